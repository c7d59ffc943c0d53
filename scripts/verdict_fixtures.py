"""Regenerate the bench runs the verdict tests read (tests/fixtures/runs/): mlp, resnet18 and a small
CNN built here, each benched briefly with every engine in a throw-away project, the records copied
with their raw latencies kept (the verdict bootstraps over them), except the null engine's, cut to
its first 1,000 calls (millions in a second; never a candidate).

    python scripts/verdict_fixtures.py            # minutes: it compiles resnet18 untuned

Run it when the record format changes; the tests check what the verdict says about these runs, so
read the new sentences (tests/integration/test_verdict_runs.py) before committing them.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import onnx

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "fixtures" / "runs"
NULL_KEPT = 1000
BENCH = ("--concurrency", "1,64", "--duration", "2", "--warmup", "0.5", "--min-requests", "50", "--json")


def small_cnn() -> onnx.ModelProto:
    """Two 3x3 convolutions and a classifier on 32x32 images: a user's own small CNN."""
    from workbench.zoo.builder import BATCH, FLOAT, GraphBuilder

    g = GraphBuilder("smallcnn", seed=7)
    x = g.input("image", FLOAT, [BATCH, 3, 32, 32])
    x = g.maxpool(g.relu(g.conv(x, 3, 16, 3)), 2, 2)
    x = g.relu(g.conv(x, 16, 32, 3))
    g.op("Identity", [g.gemm(g.global_avgpool_flatten(x), 32, 10)], out="logits")
    g.output("logits", FLOAT, [BATCH, 10])
    return g.build()


def bench(home: Path, model: str, *extra: str) -> Path:
    exe = Path(sys.executable).parent / "workbench"
    env = {**os.environ, "WORKBENCH_HOME": str(home)}
    done = subprocess.run([str(exe), "bench", "--model", model, *BENCH, *extra], env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode:
        raise SystemExit(f"bench {model} failed:\n{done.stderr[-2000:]}")
    return Path(json.loads(done.stdout)["run_dir"])


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="verdict-fixtures-"))
    shutil.copytree(REPO / "targets", home / "targets")
    (home / "models").mkdir()
    (home / "tuning_logs").mkdir()
    onnx.save(small_cnn(), home / "models" / "smallcnn.onnx")
    runs = {"mlp": bench(home, "mlp", "--batch-sizes", "1,8"),
            "smallcnn": bench(home, "smallcnn", "--batch-sizes", "1"),
            "resnet18": bench(home, "resnet18", "--batch-sizes", "1")}
    for name, run_dir in runs.items():
        target = OUT / name
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(run_dir / "records", target / "records")
        for path in (target / "records").glob("null__*.json"):  # the harness's millions of calls; never a candidate
            record = json.loads(path.read_text())
            record["result"]["raw_latency_us"] = record["result"].get("raw_latency_us", [])[:NULL_KEPT]
            path.write_text(json.dumps(record))
        for extra in ("context.json", "verdict.json"):
            if (run_dir / extra).exists():
                shutil.copy2(run_dir / extra, target / extra)
        print(f"{name}: {run_dir} -> {target}")


if __name__ == "__main__":
    main()
