"""Cross-check `workbench bench` against Triton's perf_analyzer on one running `workbench serve` (#33 item 4).

    .venv/bin/python scripts/perf_analyzer_check.py                 # HTTP and gRPC, concurrency 1 and 64
    .venv/bin/python scripts/perf_analyzer_check.py --duration 10 --concurrency 1,16,64

A tool, never a dependency: everything it fetches goes under build/perf_analyzer/ (git-ignored).
perf_analyzer comes from PyPI's `perf-analyzer` 2.60 wheel, which needs glibc 2.38 (Debian 12 has 2.36),
so the script fetches Debian trixie's libc6, libstdc++6, libgcc-s1, zlib1g and libssl3t64 with
`apt-get download` through a private sources list and state folder (never /etc/apt), unpacks them with
`dpkg-deb -x`, and starts perf_analyzer through that folder's dynamic loader.

It exports mlp (batch sizes 1,8), starts one `workbench serve` with REST and gRPC on loopback, and
measures that same server with both tools, binary tensors for both, one cell at a time (perf_analyzer,
then workbench): REST with `workbench bench --url ... --wire binary`; gRPC with bench's own load
generator (workbench/load, the code `bench --protocol grpc` runs) pointed at the server's gRPC port,
since `bench --protocol grpc` does not take --url. Both tools run on the same cores as the server.

perf_analyzer's numbers are read from its stdout, not its CSV (-f): it aborts after printing its client
figures ("Server side statistics compute counts must be the same") when the server's /stats counters
for compute_input, compute_infer and compute_output are read while a request is between them.
"""

import argparse
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "perf_analyzer"
VENV_BIN = ROOT / ".venv" / "bin"
TRIXIE = "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main\n"
DEBS = ("libc6", "libstdc++6", "libgcc-s1", "zlib1g", "libssl3t64")


def sh(*cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def perf_analyzer() -> list[str]:
    """The command prefix that starts perf_analyzer on trixie's libraries (fetched once)."""
    binary = WORK / "wheel" / "perf_analyzer" / "bin" / "perf_analyzer"
    if not binary.exists():
        (WORK / "dl").mkdir(parents=True, exist_ok=True)
        sh(VENV_BIN / "python", "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--platform", "manylinux_2_38_x86_64", "perf-analyzer==2.60.0", "-d", WORK / "dl")
        zipfile.ZipFile(next((WORK / "dl").glob("perf_analyzer-2.60.0-*.whl"))).extractall(WORK / "wheel")
        binary.chmod(0o755)
    libs = WORK / "trixie"
    loader = libs / "usr" / "lib64" / "ld-linux-x86-64.so.2"
    if not loader.exists():
        apt = WORK / "apt"
        for d in ("lists/partial", "cache/archives/partial", "debs"):
            (apt / d).mkdir(parents=True, exist_ok=True)
        (apt / "sources.list").write_text(TRIXIE)
        opts = [f"-o=Dir::Etc::SourceList={apt / 'sources.list'}", "-o=Dir::Etc::SourceParts=/dev/null",
                f"-o=Dir::State::Lists={apt / 'lists'}", f"-o=Dir::Cache={apt / 'cache'}"]
        sh("apt-get", *opts, "update")
        sh("apt-get", *opts, "download", *DEBS, cwd=apt / "debs")
        for deb in sorted((apt / "debs").glob("*.deb")):
            sh("dpkg-deb", "-x", deb, libs)
    return [str(loader), "--library-path", f"{libs / 'lib/x86_64-linux-gnu'}:{libs / 'usr/lib/x86_64-linux-gnu'}",
            str(binary)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(http: int, grpc: int, pin: list[str]) -> subprocess.Popen:
    bundle = WORK / "bundle" / "mlp-host.tar.gz"
    if not bundle.exists():
        sh(VENV_BIN / "workbench", "export", "--model", "mlp", "--target", "host", "--batch-sizes", "1,8",
           "--out", bundle.parent, stdout=subprocess.DEVNULL)
    log = open(WORK / "serve.log", "w")
    server = subprocess.Popen([*pin, VENV_BIN / "workbench", "serve", bundle, "--host", "127.0.0.1",
                               "--port", str(http), "--grpc-port", str(grpc)], stdout=log, stderr=subprocess.STDOUT)
    for _ in range(120):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http}/v2/health/ready", timeout=1):
                return server
        except OSError:
            time.sleep(0.5)
    server.terminate()
    sys.exit(f"workbench serve did not become ready; see {WORK / 'serve.log'}")


def run_perf_analyzer(pa: list[str], protocol: str, port: int, c: int, window_ms: int) -> dict:
    cmd = pa + ["-m", "mlp", "-u", f"127.0.0.1:{port}", "-i", protocol, "-b", "1", "--concurrency-range", str(c),
                "--input-data", "random", "-p", str(window_ms), "-s", "25", "-r", "10"]
    if protocol == "http":
        cmd += ["--input-tensor-format", "binary", "--output-tensor-format", "binary"]
    cpu0 = sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2])
    wall0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    text = out.stdout + out.stderr
    (WORK / f"pa_{protocol}_c{c}.txt").write_text(" ".join(cmd) + "\n" + text)
    found = {k: re.search(rf"{pat}: ([0-9.]+)", text) for k, pat in
             (("rps", "Throughput"), ("p50", "p50 latency"), ("p99", "p99 latency"))}
    if not all(found.values()):
        return {"rps": None, "p50": None, "p99": None, "note": f"rc {out.returncode}: {text.strip()[-200:]}"}
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    client = (cpu.ru_utime + cpu.ru_stime - cpu0) / (time.perf_counter() - wall0)
    note = f"client CPU {client:.0%}" + ("" if out.returncode == 0 else f", rc {out.returncode} after its report")
    return {"rps": float(found["rps"][1]), "p50": float(found["p50"][1]) / 1e3,
            "p99": float(found["p99"][1]) / 1e3, "note": note}


def run_bench_rest(port: int, c: int, duration: float) -> dict:
    out = sh(VENV_BIN / "workbench", "bench", "--model", "mlp", "--url", f"http://127.0.0.1:{port}", "--wire",
             "binary", "--concurrency", str(c), "--duration", str(duration), "--warmup", "2", "--json",
             capture_output=True, text=True)
    r = json.loads(out.stdout)["results"][0]
    return {"rps": r["throughput"], "p50": r["p50_ms"], "p99": r["p99_ms"],
            "note": f"client CPU {r['generator_cpu']:.0%}" + ("" if r["stable"] else ", unstable")}


def run_bench_grpc(port: int, c: int, duration: float) -> dict:
    import numpy as np

    from workbench.load import generator
    from workbench.load.grpc_client import GrpcEndpoint, infer_request

    rng = np.random.default_rng(0)
    requests = [infer_request("mlp", {"input": rng.standard_normal((1, 64), dtype=np.float32)}) for _ in range(16)]
    spec = generator.LoadSpec(GrpcEndpoint("127.0.0.1", port), requests, duration, 2.0, min_requests=200)
    s = generator.run(generator.closed_loop(spec, c)).summary()
    return {"rps": s["throughput_rps"], "p50": s["latency_ms"]["p50_ms"], "p99": s["latency_ms"]["p99_ms"],
            "note": f"client CPU {s['generator_cpu']:.0%}" + (f", errors {s['errors']}" if s["errors"] else "")}


def server_cpu(pid: int) -> float:
    """The server's user+system CPU seconds so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(run, pid: int, *args) -> dict:
    """One tool's cell, with the server's CPU (cores busy, averaged over the tool's whole run) added."""
    cpu0, wall0 = server_cpu(pid), time.perf_counter()
    result = run(*args)
    result["note"] = f"server CPU {(server_cpu(pid) - cpu0) / (time.perf_counter() - wall0):.0%}, " + result["note"]
    return result


def table(rows: list[tuple]) -> str:
    head = ("| protocol | c | perf_analyzer req/s | bench req/s | perf_analyzer p50 ms | bench p50 ms "
            "| perf_analyzer p99 ms | bench p99 ms | notes |")
    lines = [head, "|" + "---|" * 9]
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    for protocol, c, pa, wb in rows:
        notes = "; ".join(n for n in (pa["note"] and f"perf_analyzer {pa['note']}", f"bench {wb['note']}") if n)
        lines.append(f"| {protocol} | {c} | {fmt(pa['rps'], '.0f')} | {fmt(wb['rps'], '.0f')} | "
                     f"{fmt(pa['p50'], '.3f')} | {fmt(wb['p50'], '.3f')} | {fmt(pa['p99'], '.3f')} | "
                     f"{fmt(wb['p99'], '.3f')} | {notes} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="1,64")
    parser.add_argument("--duration", type=float, default=8.0, help="bench's measured seconds per cell")
    parser.add_argument("--window-ms", type=int, default=3000, help="perf_analyzer's measurement window")
    parser.add_argument("--pin", action="store_true",
                        help="server on CPU 0, both tools on CPU 1: no competition between load and server")
    args = parser.parse_args()
    client_pin = ["taskset", "-c", "1"] if args.pin else []
    pa = client_pin + perf_analyzer()
    http, grpc = free_port(), free_port()
    server = start_server(http, grpc, ["taskset", "-c", "0"] if args.pin else [])
    if args.pin:
        os.sched_setaffinity(0, {1})  # the in-process gRPC generator and the bench subprocesses
    rows = []
    try:
        load0 = os.getloadavg()
        for protocol, port in (("http", http), ("grpc", grpc)):
            for c in (int(x) for x in args.concurrency.split(",")):
                pa_result = measured(run_perf_analyzer, server.pid, pa, protocol, port, c, args.window_ms)
                bench = run_bench_rest if protocol == "http" else run_bench_grpc
                rows.append((protocol, c, pa_result, measured(bench, server.pid, port, c, args.duration)))
                print(f"{protocol} c{c}: perf_analyzer {pa_result}, bench {rows[-1][3]}", file=sys.stderr)
        load1 = os.getloadavg()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    print(table(rows))
    print(f"\n{'pinned: server on CPU 0, tools on CPU 1' if args.pin else 'unpinned: all on both cores'}; "
          f"load average (1/5/15 min) before: {'/'.join(f'{x:.2f}' for x in load0)}, "
          f"after: {'/'.join(f'{x:.2f}' for x in load1)}; cores: {os.cpu_count()}; "
          f"perf_analyzer's full output: {WORK}/pa_*.txt")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
