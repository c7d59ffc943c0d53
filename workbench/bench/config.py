"""What a bench run is asked to do, and the refusal of options that cannot work together."""

import math
from dataclasses import dataclass, field
from pathlib import Path

from workbench.engines import registry
from workbench.errors import WorkbenchError
from workbench.load import direct
from workbench.tolerance import DEFAULT_ATOL, DEFAULT_RTOL, check_tolerance


@dataclass(frozen=True)
class BenchConfig:
    model: str
    target: str
    engines: tuple[str, ...] | None = None  # None: every engine (tvm alone over RPC)
    concurrency: tuple[int, ...] = (1, 64)
    batch_sizes: tuple[int, ...] | None = None  # direct measurements and tvm builds; None: the profile's
    rate: float | None = None
    slo_p99_ms: float | None = None
    duration_s: float = 10.0
    warmup_s: float = 2.0
    min_requests: int = 200
    seed: int = 0
    url: str | None = None
    max_batch: int = 32
    max_delay_ms: float = 0.0
    server_workers: int = 1
    engine_threads: int = 0  # the served engines' threads (registry.check_threads); 0: one per physical core
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    direct_spec: direct.DirectSpec = field(default_factory=direct.DirectSpec)
    reports_dir: Path | None = None
    rpc: str | None = None  # tracker host:port: the tvm engine is timed on a device there
    rpc_key: str | None = None
    rpc_wait_s: float = 30.0
    wire: str = "json"  # workbench-server requests: v2 JSON tensors, or the binary tensor extension
    protocol: str = "rest"  # workbench-server engines: OIP v2 over HTTP (REST), or over gRPC (raw tensors)
    dims: tuple = ()  # --dims (workbench/dims.py): every engine measured at each combination of their sizes

def validate(config: BenchConfig) -> None:
    if config.wire not in ("json", "binary"):
        raise WorkbenchError(f"--wire must be json or binary (got {config.wire!r})")
    if config.protocol not in ("rest", "grpc"):
        raise WorkbenchError(f"--protocol must be rest or grpc (got {config.protocol!r})")
    if config.protocol == "grpc" and not config.url and registry.FLASK_NAIVE in (config.engines or registry.NAMES):
        raise WorkbenchError("--protocol grpc drives the workbench-server engines bench starts (or a server at "
                             "--url host:port); pass --engines without flask-naive")
    if config.wire == "binary" and registry.FLASK_NAIVE in (config.engines or registry.NAMES) and not config.url:
        raise WorkbenchError("flask-naive speaks JSON only, so --wire binary would compare unequal requests; "
                             "pass --engines without flask-naive, or --wire json")
    if config.engines is not None:
        if not config.engines:
            raise WorkbenchError(f"--engines names no engine; choose from: {', '.join(registry.NAMES)}")
        for name in config.engines:
            registry.get(name)
    if not config.concurrency or any(c < 1 for c in config.concurrency):
        raise WorkbenchError("--concurrency takes positive integers, e.g. 1,4,16,64")
    if config.rate is not None and not 0 < config.rate < math.inf:
        raise WorkbenchError(f"--rate must be a positive number of requests per second (got {config.rate})")
    if config.slo_p99_ms is not None and not config.slo_p99_ms > 0:
        raise WorkbenchError(f"--slo-p99-ms must be a positive number of milliseconds (got {config.slo_p99_ms})")
    if not config.duration_s > 0 or not config.warmup_s >= 0:
        raise WorkbenchError("--duration must be positive and --warmup non-negative (seconds)")
    if config.seed < 0 or config.min_requests < 0:
        raise WorkbenchError("--seed and --min-requests must be non-negative integers")
    check_tolerance(config.rtol, config.atol)
    if config.max_batch < 1 or config.max_delay_ms < 0 or config.server_workers < 1:
        raise WorkbenchError("--max-batch and --server-workers must be at least 1, --max-delay-ms non-negative")
    registry.check_threads(config.engine_threads)
    if config.rpc is not None:
        from workbench.engines.rpc import check_wait

        check_wait(config.rpc_wait_s)  # before the build, not after it
