"""Does ONNX Runtime's thread spinning disturb TVM in a paired run? (#29 item 1; docs/BENCHMARKS.md,
"How the paired ratio is protected").

For each ONNX Runtime spinning setting, interleaved round by round so that the machine's load falls on
all alike: TVM's and ONNX Runtime's direct p50, then a paired run of the two; a paired run in which
TVM's paired p50 is over twice its own direct p50 is counted as disturbed.

    .venv/bin/python scripts/paired_interference.py BUILD_DIR MODEL.onnx [ROUNDS]
    e.g. scripts/paired_interference.py build/mlp/host models/zoo/mlp.onnx 6   (a tuned build)
"""

import sys
from pathlib import Path

import numpy as np

from workbench import fingerprint, models
from workbench.engines.tvm_engine import tvm_engine
from workbench.load import direct as timing
from workbench.load.direct import DirectSpec

SETTINGS = {  # name: ONNX Runtime session config entries
    "spin (ORT default)": {},
    "force_spinning_stop=1": {"session.force_spinning_stop": "1"},
    "allow_spinning=0": {"session.intra_op.allow_spinning": "0"},
}


def ort_call(model: Path, entries: dict):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = fingerprint.physical_cores()
    for key, value in entries.items():
        options.add_session_config_entry(key, value)
    session = ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
    return lambda inputs: session.run(None, inputs)


def main(build_dir: str, model_path: str, rounds: int = 6) -> None:
    model = Path(model_path)
    tvm = tvm_engine(Path(build_dir))
    orts = {name: ort_call(model, entries) for name, entries in SETTINGS.items()}
    spec = DirectSpec(min_runs=30, min_time_s=1.0, paired_s=2.0)
    spec_in = models.input_specs(models.load(models.resolve(model_path)))
    rng = np.random.default_rng(0)
    for batch in sorted(tvm.batch_sizes):
        x = {s.name: rng.standard_normal([batch, *s.shape[1:]]).astype(s.dtype) for s in spec_in}
        rows = {name: [] for name in orts}
        for _ in range(rounds):
            for name, ort_run in orts.items():
                tvm_p50 = timing.latency(tvm, x, spec)["latency_ms"]["p50_ms"]
                ort_p50 = timing.latency(ort_run, x, spec)["latency_ms"]["p50_ms"]
                p = timing.paired({"tvm": tvm, "onnxruntime": ort_run}, x, spec)
                rows[name].append((tvm_p50, ort_p50, p["tvm"]["latency_ms"]["p50_ms"],
                                   p["onnxruntime"]["latency_ms"]["p50_ms"], p["tvm"]["ratio_p50"]))
        for name, r in rows.items():
            a = np.asarray(r)
            disturbed = int((a[:, 2] > 2 * a[:, 0]).sum())
            print(f"b{batch} {name:22s} TVM paired p50 > 2x its direct in {disturbed} of {rounds} runs "
                  f"(worst {np.max(a[:, 2] / a[:, 0]):.1f}x) | ORT direct p50 median {np.median(a[:, 1]) * 1e3:.1f} us,"
                  f" paired {np.median(a[:, 3]) * 1e3:.1f} us | ratio paired/direct median "
                  f"{np.median(a[:, 4] / (a[:, 0] / a[:, 1])):.2f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:4]))
