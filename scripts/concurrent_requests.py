"""Time one request, then N concurrent ones, against a workbench server started from a config.

    python scripts/concurrent_requests.py reports/<run>/logs/server-tvm.json 4

The config is the one `bench` wrote for a served engine (its port is replaced by a free one). Also
times the same engine called from a worker thread in this plain process, for comparison.
"""

import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from workbench import models
from workbench.engines.registry import open_engine
from workbench.serving.process import ServerProcess, free_port, python_module
from workbench.serving.protocol import encode_request
from workbench.serving.server import ServerConfig


def post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        response.read()
        return response.status


def main(config_path: Path, concurrent: int) -> None:
    config = ServerConfig.from_json(config_path.read_text())
    model = config.models[0]
    inputs = models.sample_inputs(models.load(models.resolve(model.model_path)), 1)
    engine = open_engine(model.engine, model_path=Path(model.model_path),
                         build_dir=Path(model.build_dir) if model.build_dir else None, outputs=model.outputs)
    with ThreadPoolExecutor(1) as worker:
        for _ in range(3):
            started = time.perf_counter()
            worker.submit(engine, inputs).result()
            print(f"engine from a worker thread, plain process: {time.perf_counter() - started:.3f} s")
    config.port = free_port()
    copy = Path("/tmp") / f"concurrent-requests-{config.port}.json"
    copy.write_text(config.to_json())
    url = f"http://127.0.0.1:{config.port}/v2/models/{model.name}/infer"
    body = encode_request(inputs)
    with ServerProcess("probe", python_module("workbench.serving.server", str(copy)), config.port,
                       copy.with_suffix(".log")):
        started = time.perf_counter()
        print(f"one request: status {post(url, body)} in {time.perf_counter() - started:.3f} s")
        with ThreadPoolExecutor(concurrent) as pool:
            started = time.perf_counter()
            statuses = list(pool.map(lambda _: post(url, body), range(concurrent)))
            print(f"{concurrent} concurrent requests: statuses {statuses} in {time.perf_counter() - started:.3f} s")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
