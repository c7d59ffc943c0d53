"""Export the two committed torch models in models/exported/ (development only: torch is not a
dependency of workbench, and nothing runs this at install or test time).

    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch==2.13.0 onnx onnxscript
    /tmp/torchenv/bin/python scripts/export_torch_models.py

They stand for models users bring, written the way torch users write them rather than by our
GraphBuilder: `torch-cnn`, a CNN with BatchNorm and Hardswish (a resnet18 stem and first stage,
then MobileNetV3-style blocks), and `torch-encoder`, a BERT-width transformer encoder
(nn.TransformerEncoder, hidden 256, 4 heads, GELU) on int64 token ids and an attention mask, with a
dynamic batch and a dynamic sequence length (`--dims seq=128` compiles it). Weights are seeded, so a
rerun writes the same graphs; the exporter's version is in each file's producer fields.
"""

import argparse
from pathlib import Path

import torch
from torch import nn

OUT = Path(__file__).resolve().parent.parent / "models" / "exported"


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]


class BasicBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(*conv_bn(channels, channels, 3), nn.ReLU(), *conv_bn(channels, channels, 3))

    def forward(self, x):
        return torch.relu(self.body(x) + x)


class InvertedResidual(nn.Module):
    """MobileNetV3's block: expand, depthwise, project, with Hardswish."""

    def __init__(self, cin: int, expand: int, cout: int, stride: int):
        super().__init__()
        self.residual = stride == 1 and cin == cout
        self.body = nn.Sequential(*conv_bn(cin, expand, 1), nn.Hardswish(),
                                  *conv_bn(expand, expand, 3, stride, groups=expand), nn.Hardswish(),
                                  *conv_bn(expand, cout, 1))

    def forward(self, x):
        out = self.body(x)
        return out + x if self.residual else out


class TorchCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            *conv_bn(3, 64, 7, 2), nn.ReLU(), nn.MaxPool2d(3, 2, 1),   # resnet18's stem
            BasicBlock(64), BasicBlock(64),                            # and its first stage
            InvertedResidual(64, 192, 96, 2), InvertedResidual(96, 288, 96, 1),
            InvertedResidual(96, 384, 160, 2), InvertedResidual(160, 480, 160, 1))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(160, 10))

    def forward(self, x):
        return self.classifier(nn.functional.adaptive_avg_pool2d(self.features(x), 1))


class TorchEncoder(nn.Module):
    def __init__(self, vocab: int = 1000, hidden: int = 256, heads: int = 4, layers: int = 1, max_seq: int = 256):
        super().__init__()
        self.tokens = nn.Embedding(vocab, hidden)
        self.positions = nn.Embedding(max_seq, hidden)
        self.norm = nn.LayerNorm(hidden)
        layer = nn.TransformerEncoderLayer(hidden, heads, 4 * hidden, dropout=0.0, activation="gelu",
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, input_ids, attention_mask):
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        x = self.norm(self.tokens(input_ids) + self.positions(positions))
        return self.encoder(x, src_key_padding_mask=attention_mask == 0)


def randomize_batchnorm(model: nn.Module) -> None:
    """Fresh BatchNorm layers are identities; a trained model's are not, so give them statistics."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)


def export(model: nn.Module, args: tuple, path: Path, names: list[str], dynamic: dict) -> None:
    model.eval()
    torch.onnx.export(model, args, str(path), input_names=names[:len(args)], output_names=names[len(args):],
                      dynamic_axes=dynamic, opset_version=18,
                      external_data=False)  # one file, as users share them
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    # Not under torch.no_grad(): there torch runs its fused fast-path encoder, which ONNX lacks.
    cnn = TorchCNN()
    randomize_batchnorm(cnn)
    export(cnn, (torch.randn(2, 3, 224, 224),), out / "torch-cnn.onnx", ["input", "logits"],
           {"input": {0: "batch"}, "logits": {0: "batch"}})
    encoder = TorchEncoder()
    ids = torch.randint(0, 1000, (2, 128))  # batch 2: torch specialises a 1
    export(encoder, (ids, torch.ones_like(ids)), out / "torch-encoder.onnx",
           ["input_ids", "attention_mask", "last_hidden_state"],
           {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
            "last_hidden_state": {0: "batch", 1: "seq"}})


if __name__ == "__main__":
    main()
