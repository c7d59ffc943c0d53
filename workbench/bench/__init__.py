"""`workbench bench`: every engine fed the same seeded inputs, checked, then measured side by side.

Direct engines (tvm, onnxruntime, null) are called in-process: latency per batch size and offline
throughput. Served engines (flask-naive, server-*) are real server processes on 127.0.0.1 driven
by the in-process load generator: closed loop per concurrency, open loop at --rate, SLO search.
An engine whose outputs differ from ONNX Runtime's is recorded as rejected and not timed.

One module per concern: `config` (options and their validation), `session` (the run, its records
and provenance), `inputs` (seeded samples and the reference check), `context` (the build and what
the report needs beside the records), `direct` (in-process, paired and RPC timing), `served`
(server engines, load scenarios, the SLO search), `run` (the order of it all).
"""

from workbench.bench.config import BenchConfig, validate
from workbench.bench.run import run_bench

__all__ = ["BenchConfig", "run_bench", "validate"]
