"""The `workbench` command line: parse, call the typed function, print; errors become one line."""

import functools
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from workbench.console import console, err_console
from workbench.errors import WorkbenchError
from workbench.tolerance import DEFAULT_ATOL, DEFAULT_RTOL

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Tune, compile and benchmark ONNX models with Apache TVM, side by side with ONNX Runtime.")

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="A built-in model name or a path to an .onnx file")]
TargetOpt = Annotated[str, typer.Option("--target", "-t", help="A target profile name (see `workbench targets`)")]
BatchOpt = Annotated[str | None, typer.Option("--batch-sizes", help="Comma-separated, e.g. 1,8 (default: the profile's)")]
DatabaseOpt = Annotated[Path | None, typer.Option("--database", help="Tuning database directory (default: tuning_logs/<target>)")]
RtolOpt = Annotated[float, typer.Option(help="Relative tolerance of the correctness gate against ONNX Runtime")]
AtolOpt = Annotated[float, typer.Option(help="Absolute tolerance of the correctness gate against ONNX Runtime")]


def _one_line_errors(fn):
    """Every WorkbenchError ends the command with its message on one line and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except WorkbenchError as exc:
            err_console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def parse_batch_sizes(text: str | None, default: tuple[int, ...]) -> tuple[int, ...]:
    if text is None:
        return default
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise WorkbenchError(f"--batch-sizes must be comma-separated positive integers (got {text!r})") from None
    if not sizes or any(s <= 0 for s in sizes):
        raise WorkbenchError(f"--batch-sizes must be comma-separated positive integers (got {text!r})")
    return tuple(sorted(set(sizes)))


@app.command()
@_one_line_errors
def targets() -> None:
    """List the target profiles; the ones this machine can run are marked."""
    from workbench import fingerprint
    from workbench.compiler.hostinfo import llvm_host_cpu
    from workbench.targets import load_profile, profile_paths

    fp = fingerprint.machine_fingerprint()
    try:
        llvm = f"[bold]{llvm_host_cpu()}[/bold]"
    except ImportError as exc:  # the rest of the table needs no TVM: say so and go on
        llvm = f"unknown, TVM cannot be imported ({escape(str(exc))}); reinstall with make install"
    console.print(f"This machine: {fp['cpu_model']} (LLVM: {llvm}, "
                  f"{fp['physical_cores']} physical cores){'; GPU: ' + fp['gpus'][0]['name'] if fp['gpus'] else '; no GPU'}")
    table = Table("target", "device", "runs here", "TVM target", "description")
    for name, path in profile_paths().items():
        try:
            profile = load_profile(path)
        except WorkbenchError as exc:  # one broken profile must not hide the others
            table.add_row(escape(name), "", "[red]no: malformed[/red]", f"[red]{escape(str(exc))}[/red]", "")
            continue
        runs, why = profile.runs_here()
        table.add_row(escape(profile.name), profile.device, "[green]yes[/green]" if runs else f"no: {why}",
                      _shown_target(profile), escape(profile.description))
    console.print(table)


def _shown_target(profile) -> str:
    try:
        resolved = profile.resolved_target()
    except ImportError:  # mcpu "auto" is LLVM's name for this CPU, known only through TVM: shown as it stands
        resolved = profile.target
    except WorkbenchError as exc:
        return f"[red]{escape(str(exc))}[/red]"
    return " ".join(f"{k}={resolved[k]}" for k in ("kind", "mcpu", "mtriple", "arch", "num-cores") if k in resolved)


@app.command()
@_one_line_errors
def models() -> None:
    """List the built-in model zoo and the ONNX files under models/ with their size and cost."""
    from workbench import models as zoo
    from workbench.modelstats import compute_stats

    table = Table("model", "source", "inputs", "outputs", "parameters", "GFLOPs")
    sources = [zoo.resolve(n) for n in zoo.builtin_names()]
    sources += [zoo.ModelSource(p.stem, p, builtin=False) for p in zoo.user_model_paths()]
    for source in sources:
        try:
            model = zoo.load(source)
            stats = compute_stats(model)
        except WorkbenchError as exc:
            table.add_row(escape(source.name), escape(str(source.path)), f"[red]{escape(str(exc))}[/red]", "", "", "")
            continue
        sig = lambda specs: "\n".join(f"{s.name} {s.dtype}[{'x'.join(map(str, s.shape))}]" for s in specs)  # noqa: E731
        table.add_row(escape(source.name), "built-in" if source.builtin else escape(str(source.path)),
                      escape(sig(zoo.input_specs(model))), escape(sig(zoo.output_specs(model))), f"{stats.parameters / 1e6:.2f} M", f"{stats.gflops:.4g}")
    console.print(table)


def _database_dir(database: Path | None, target: str) -> Path:
    from workbench.paths import tuning_logs_dir

    return database or tuning_logs_dir() / target


@app.command()
@_one_line_errors
def tune(model: ModelOpt, target: TargetOpt,
         trials: Annotated[int | None, typer.Option(help="Total trials (default: the profile's budget)")] = None,
         batch_sizes: BatchOpt = None, database: DatabaseOpt = None,
         seed: Annotated[int, typer.Option(help="Search seed")] = 0,
         rpc: Annotated[str | None, typer.Option(help="Measure on devices at this RPC tracker (host:port)")] = None,
         rpc_key: Annotated[str | None, typer.Option(help="Device key at the tracker")] = None,
         rpc_wait: Annotated[float, typer.Option(help="Seconds to wait for a device under the key")] = 30,
         minutes: Annotated[float | None, typer.Option(
             help="Stop after the batch that passes this many minutes (everything measured is kept)")] = None,
         retime_pool: Annotated[int, typer.Option(
             help="After tuning, choose each task's schedule among this many of its best records, timed "
                  "side by side as tuning timed them (0: off)")] = 8) -> None:
    """Tune a model's kernels with MetaSchedule; records go to the target's shared database."""
    from workbench.compiler.tuner import TuneRequest
    from workbench.compiler.tuner import tune as run_tune
    from workbench.models import resolve
    from workbench.targets import get_profile, profile_with_rpc
    from workbench.tuneview import TuneDisplay, print_summary

    profile = profile_with_rpc(get_profile(target), rpc, rpc_key)
    request = TuneRequest(source=resolve(model), profile=profile,
                          trials=profile.total_trials if trials is None else trials,
                          batch_sizes=parse_batch_sizes(batch_sizes, profile.batch_sizes),
                          database_dir=_database_dir(database, target), seed=seed, rpc_wait_s=rpc_wait,
                          minutes=minutes, retime_pool=retime_pool)
    summary = run_tune(request, TuneDisplay())
    print_summary(summary)
    if summary.out_of_time:
        console.print(f"stopped at the --minutes {minutes:g} limit; rerun to continue from the records")
    if summary.interrupted:
        err_console.print(f"interrupted: the {summary.records_after} records measured so far are kept; "
                          "rerun the same command to continue")
        raise typer.Exit(130)


fleet_app = typer.Typer(help="A local RPC tracker and servers (TVM's own) for distributed tuning.",
                        no_args_is_help=True)
app.add_typer(fleet_app, name="fleet")


@fleet_app.command("up")
@_one_line_errors
def fleet_up(servers: Annotated[int, typer.Option(help="RPC servers to start")] = 2,
             key: Annotated[str, typer.Option(help="Key the servers register under")] = "cpu-local",
             port: Annotated[int | None, typer.Option(help="Tracker port (default: a free one)")] = None) -> None:
    """Start a tracker and RPC servers on 127.0.0.1 in the background."""
    from workbench import fleet

    state = fleet.up(servers, key, port=port)
    console.print(f"fleet up: tracker {state.tracker}, {state.servers} servers under key '{state.key}' "
                  f"(supervisor pid {state.supervisor_pid})\nuse: workbench tune ... --rpc {state.tracker} "
                  f"--rpc-key {state.key}; stop: workbench fleet down", soft_wrap=True)


@fleet_app.command("status")
@_one_line_errors
def fleet_status(tracker: Annotated[str | None, typer.Option(help="host:port (default: the fleet that is up)")] = None) -> None:
    """Keys, free and busy devices, and queued requests, as the tracker sees them."""
    from workbench import fleet
    from workbench.engines.rpc import registered, summary
    from workbench.targets import parse_tracker

    if tracker is None:
        state = fleet.read_state()
        if state is None:
            raise WorkbenchError("no fleet is up here; start one with `workbench fleet up`, or pass --tracker host:port")
        tracker = state.tracker
    host, port = parse_tracker(tracker)
    info = summary(host, port)
    table = Table("key", "devices", "free", "busy", "queued requests", title=f"tracker {host}:{port}")
    for key, queue in sorted(info.get("queue_info", {}).items()):
        total = registered(info, key)
        free = int(queue.get("free", 0))
        table.add_row(key, str(total), str(free), str(max(0, total - free)), str(queue.get("pending", 0)))
    console.print(table)


@fleet_app.command("down")
@_one_line_errors
def fleet_down() -> None:
    """Stop the tracker and servers that `fleet up` started."""
    from workbench import fleet

    state = fleet.down()
    console.print("no fleet was up" if state is None else f"fleet down: tracker {state.tracker} and "
                  f"{state.servers} servers stopped")


def compile_request(model: str, target: str, batch_sizes: str | None, database: Path | None, out: Path | None,
                    rtol: float, atol: float):
    from workbench.compiler.builder import CompileRequest
    from workbench.models import resolve
    from workbench.paths import build_dir
    from workbench.targets import get_profile

    profile = get_profile(target)
    source = resolve(model)
    if database is not None and not database.is_dir():
        raise WorkbenchError(f"no tuning database at {database}; check the path, or leave --database out "
                             f"to use tuning_logs/{target}")
    return CompileRequest(source=source, profile=profile,
                          batch_sizes=parse_batch_sizes(batch_sizes, profile.batch_sizes),
                          database_dir=_database_dir(database, target),
                          out_dir=out or build_dir() / source.name / target, rtol=rtol, atol=atol)


def compile_command(model: str, target: str, batch_sizes: str | None, database: Path | None, out: Path | None,
                    rtol: float, atol: float) -> Path:
    from workbench.compiler.builder import compile_model

    request = compile_request(model, target, batch_sizes, database, out, rtol, atol)
    source = request.source
    manifest = compile_model(request)
    correctness = manifest["correctness"]
    if correctness["checked"]:
        worst = max((c for cs in correctness["per_batch"].values() for c in cs), key=lambda c: c["max_abs_error"])
        console.print(f"Correctness gate passed against ONNX Runtime (worst max abs error {worst['max_abs_error']:.3g}, "
                      f"max rel error {worst['max_rel_error']:.3g}; rtol {rtol:g}, atol {atol:g})")
    console.print(f"Compiled {source.name} for {target} at batch sizes "
                  f"{', '.join(map(str, manifest['batch_sizes']))} -> {request.out_dir}")
    return request.out_dir


@app.command("compile")
@_one_line_errors
def compile_(model: ModelOpt, target: TargetOpt, batch_sizes: BatchOpt = None, database: DatabaseOpt = None,
             out: Annotated[Path | None, typer.Option(help="Output directory (default: build/<model>/<target>)")] = None,
             rtol: RtolOpt = DEFAULT_RTOL,
             atol: AtolOpt = DEFAULT_ATOL) -> None:
    """Build the model with the tuning records, export a library per batch size, check it against ONNX Runtime."""
    compile_command(model, target, batch_sizes, database, out, rtol, atol)


def parse_int_list(option: str, text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise WorkbenchError(f"{option} takes comma-separated positive integers, e.g. 1,4,16,64 (got {text!r})")
    return values


@app.command()
@_one_line_errors
def bench(model: ModelOpt = "mlp", target: TargetOpt = "host",
          engines: Annotated[str | None, typer.Option(help="Comma-separated engines (default: all): tvm, onnxruntime, "
                                                      "null, flask-naive, server-tvm, server-onnxruntime, server-null")] = None,
          concurrency: Annotated[str, typer.Option(help="Closed-loop concurrency, or a sweep such as 1,4,16,64")] = "1,64",
          batch_sizes: BatchOpt = None,
          rate: Annotated[float | None, typer.Option(help="Also run open loop: Poisson arrivals at this many requests/s")] = None,
          slo_p99_ms: Annotated[float | None, typer.Option(help="Also search the highest rate with p99 under this bound")] = None,
          duration: Annotated[float, typer.Option(help="Measured seconds per scenario")] = 10.0,
          warmup: Annotated[float, typer.Option(help="Warm-up seconds per scenario (discarded)")] = 2.0,
          min_requests: Annotated[int, typer.Option(help="Minimum measured requests per scenario")] = 200,
          url: Annotated[str | None, typer.Option(help="Drive a server already running at this URL instead")] = None,
          max_batch: Annotated[int, typer.Option(help="workbench-server: largest batch (tvm: capped at the largest compiled size)")] = 32,
          max_delay_ms: Annotated[float, typer.Option(help="workbench-server: longest wait for a batch to fill (0: a batch is what queued while the engine was busy)")] = 0.0,
          server_workers: Annotated[int, typer.Option(help="workbench-server: processes sharing the port")] = 1,
          seed: Annotated[int, typer.Option(help="Seed of the inputs and of the Poisson schedule")] = 0,
          wire: Annotated[str, typer.Option(help="workbench-server requests: json (v2 JSON tensors) or binary (the binary tensor extension)")] = "json",
          rpc: Annotated[str | None, typer.Option(help="Time the tvm engine on a device at this RPC tracker (host:port)")] = None,
          rpc_key: Annotated[str | None, typer.Option(help="Device key at the tracker")] = None,
          rpc_wait: Annotated[float, typer.Option(help="Seconds to wait for a device under the key")] = 30,
          rtol: RtolOpt = DEFAULT_RTOL, atol: AtolOpt = DEFAULT_ATOL,
          as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON instead of tables")] = False) -> None:
    """Measure TVM, ONNX Runtime and served engines side by side; write reports/<run-id>/records and results.csv."""
    import json as jsonlib

    from workbench.bench import BenchConfig, run_bench
    from workbench.benchview import BenchDisplay, print_tables
    from workbench.records import row

    chosen = tuple(e.strip() for e in engines.split(",") if e.strip()) if engines is not None else None
    config = BenchConfig(model=model, target=target, concurrency=parse_int_list("--concurrency", concurrency),
                         batch_sizes=parse_batch_sizes(batch_sizes, None),
                         rate=rate, slo_p99_ms=slo_p99_ms, duration_s=duration, warmup_s=warmup,
                         min_requests=min_requests, url=url, max_batch=max_batch, max_delay_ms=max_delay_ms,
                         seed=seed, server_workers=server_workers, rpc=rpc, rpc_key=rpc_key, rpc_wait_s=rpc_wait, wire=wire,
                         rtol=rtol, atol=atol, engines=chosen)
    run_dir, records = run_bench(config, BenchDisplay(enabled=not as_json))
    if as_json:
        print(jsonlib.dumps({"run_dir": str(run_dir), "results": [row(r) for r in records]}, indent=2))
        return
    print_tables(records)
    console.print(f"records: {run_dir / 'records'}\nresults: {run_dir / 'results.csv'}")


@app.command()
@_one_line_errors
def export(model: ModelOpt, target: TargetOpt, batch_sizes: BatchOpt = None, database: DatabaseOpt = None,
           out: Annotated[Path, typer.Option(help="Folder the bundle archive is written to")] = Path("bundles"),
           version: Annotated[str, typer.Option(help="Version recorded in the manifest")] = "1",
           labels: Annotated[Path | None, typer.Option(help="Class names, one per line (image models)")] = None,
           rtol: RtolOpt = DEFAULT_RTOL,
           atol: AtolOpt = DEFAULT_ATOL) -> None:
    """Pack the compiled model (built now if missing or stale) as a serving bundle: <out>/<model>-<target>.tar.gz."""
    from workbench.bundle.export import ExportRequest, export_bundle

    request = compile_request(model, target, batch_sizes, database, None, rtol, atol)
    archive = export_bundle(ExportRequest(request, out, version, labels),
                            lambda: console.print(f"Compiling {request.source.name} for {target} (no current build)"))
    console.print(f"Exported {archive} ({archive.stat().st_size / 1e6:.1f} MB); "
                  f"check it with: workbench verify {archive}")


def _bundle_args(bundle: Path | None, models: str | None) -> list:
    from workbench.bundle.serve import parse_models

    if (bundle is None) == (models is None):
        raise WorkbenchError("name one bundle (workbench serve bundles/x.tar.gz) or several with "
                             "--models a=bundles/a.tar.gz,b=bundles/b.tar.gz, not both")
    return [(None, bundle)] if bundle is not None else parse_models(models)


@app.command()
@_one_line_errors
def serve(bundle: Annotated[Path | None, typer.Argument(help="A bundle archive or directory")] = None,
          models: Annotated[str | None, typer.Option(help="Several bundles: name=path,name=path")] = None,
          host: Annotated[str, typer.Option(help="Address to bind (0.0.0.0 to accept other machines)")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port to listen on")] = 8080,
          engine: Annotated[str, typer.Option(help="tvm (the compiled libraries) or onnxruntime (the bundle's ONNX model)")] = "tvm",
          max_batch: Annotated[int, typer.Option(help="Largest batch (capped at the largest compiled size)")] = 32,
          max_delay_ms: Annotated[float, typer.Option(help="Longest wait for a batch to fill")] = 0.0,
          max_queue: Annotated[int, typer.Option(help="Rows queued per model before answering 503")] = 2048,
          workers: Annotated[int, typer.Option(help="Processes sharing the port")] = 1,
          max_body_mb: Annotated[float, typer.Option(help="Largest request body accepted (413 above)")] = 64) -> None:
    """Serve bundles over the Open Inference Protocol v2 (and /predictions for image models) until SIGTERM."""
    from workbench.bundle.serve import serve_bundles

    if not (0 < port < 65536) or workers < 1 or max_batch < 1 or max_queue < 1 or not max_delay_ms >= 0 \
            or not max_body_mb > 0:
        raise WorkbenchError("--port must be 1-65535, --workers/--max-batch/--max-queue at least 1, "
                             "--max-delay-ms at least 0 and --max-body-mb above 0")
    serve_bundles(_bundle_args(bundle, models), engine=engine, host=host, port=port, max_batch=max_batch,
                  max_delay_ms=max_delay_ms, max_queue_rows=max_queue, workers=workers,
                  max_body_bytes=int(max_body_mb * (1 << 20)))


@app.command()
@_one_line_errors
def verify(bundle: Annotated[Path, typer.Argument(help="A bundle archive or directory")]) -> None:
    """Self-test a bundle here: checksums, that this machine can run it, outputs against the stored ONNX Runtime ones."""
    from workbench.bundle.archive import open_bundle
    from workbench.bundle.serve import verify as verify_bundle
    from workbench.errors import CorrectnessError

    with open_bundle(bundle) as opened:
        m = opened.manifest
        console.print(f"{opened.source}: {len(m['files'])} files match their checksums; built for "
                      f"{m['target']} ({m['device']}), runs here")
        table = Table("batch", "outputs vs ONNX Runtime", "max abs error", "max rel error", "p50 ms here")
        checks = verify_bundle(opened)
        for c in checks:
            table.add_row(str(c.batch), "[green]match[/green]" if c.passed else "[red]DIFFER[/red]",
                          f"{c.max_abs_error:.3g}", f"{c.max_rel_error:.3g}",
                          f"{c.p50_ms:.3f}" if c.p50_ms is not None else "-")
        console.print(table)
    failed = [c.batch for c in checks if not c.passed]
    if failed:
        raise CorrectnessError(f"batch {failed[0]}: outputs differ from the bundle's ONNX Runtime reference beyond "
                               f"rtol {m['tolerance']['rtol']:g} / atol {m['tolerance']['atol']:g}")
    console.print(f"[green]verified[/green]: {m['name']} is intact and correct on this machine")


@app.command()
@_one_line_errors
def report(run: Annotated[Path | None, typer.Argument(help="A reports/<run-id> folder (default: the latest run)")] = None,
           compare: Annotated[tuple[Path, Path] | None, typer.Option(help="Two run folders, A then B")] = None) -> None:
    """Write the HTML report of a bench run (reports/<run-id>/index.html), or compare two runs."""
    from workbench.paths import project_root
    from workbench.report.run import latest_run
    from workbench.report.write import write_comparison, write_report

    if compare is not None:
        if run is not None:
            raise WorkbenchError("give either a run folder or --compare A B, not both")
        path = write_comparison(*compare)
    else:
        path = write_report(run or latest_run(project_root() / "reports"))
    console.print(f"Report: {path}", soft_wrap=True)


@app.command()
@_one_line_errors
def demo(model: Annotated[str, typer.Option(help="Built-in model to run the flow on")] = "mlp",
         trials: Annotated[int, typer.Option(help="Tuning trials")] = 64,
         duration: Annotated[float, typer.Option(help="Measured seconds per bench scenario")] = 5.0) -> None:
    """The main job on a built-in model: tune on this CPU, compile and check, bench every engine,
    export a serving bundle, and write the HTML report."""
    from workbench.bench import BenchConfig, run_bench
    from workbench.benchview import BenchDisplay, print_tables
    from workbench.bundle.export import ExportRequest, export_bundle
    from workbench.compiler.tuner import TuneRequest
    from workbench.compiler.tuner import tune as run_tune
    from workbench.models import resolve
    from workbench.paths import project_root, tuning_logs_dir
    from workbench.report.write import write_report
    from workbench.targets import get_profile
    from workbench.tuneview import TuneDisplay, print_summary

    profile = get_profile("host")
    request = TuneRequest(resolve(model), profile, trials, profile.batch_sizes, tuning_logs_dir() / "host")
    summary = run_tune(request, TuneDisplay())
    print_summary(summary)
    out_dir = compile_command(model, "host", None, None, None, DEFAULT_RTOL, DEFAULT_ATOL)
    console.print("\n[bold]Bench[/bold] (every engine; closed loop at concurrency 1 and 64, "
                  "open loop at 300 requests/s)")
    run_dir, records = run_bench(BenchConfig(model=model, target="host", concurrency=(1, 64), rate=300.0,
                                             duration_s=duration, warmup_s=1.0), BenchDisplay(enabled=True))
    print_tables(records)
    archive = export_bundle(ExportRequest(compile_request(model, "host", None, None, None, DEFAULT_RTOL, DEFAULT_ATOL),
                                          project_root() / "bundles"))
    report = write_report(run_dir)
    console.print("\n[bold]Outputs[/bold]")
    console.print(f"  tuning database: {summary.database}")
    console.print(f"  compiled model:  {out_dir} (manifest.json + one library per batch size)")
    console.print(f"  bench records:   {run_dir / 'records'}")
    console.print(f"  serving bundle:  {archive} (workbench serve {archive})")
    console.print(f"  report:          {report}", soft_wrap=True)
