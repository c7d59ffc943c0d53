"""The `workbench` command line: parse, call the typed function, print; errors become one line.
The bundle commands and the fleet sub-commands live in workbench/commands/, registered here."""

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from workbench.commands import bundle
from workbench.commands.common import (
    AtolOpt,
    BatchOpt,
    DatabaseOpt,
    DecideByOpt,
    DimsOpt,
    LayoutOpt,
    ModelOpt,
    ReferenceOpt,
    RtolOpt,
    TargetOpt,
    compile_request,
    database_dir,
    model_batch_sizes,
    model_dims,
    one_line_errors,
    parse_batch_sizes,
    parse_int_list,
    prefer_layout,
)
from workbench.commands.fleet import fleet_app
from workbench.console import console, err_console
from workbench.dims import describe_dims, parse_dims
from workbench.engines import registry
from workbench.errors import WorkbenchError
from workbench.tolerance import DEFAULT_ATOL, DEFAULT_RTOL

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Tune, compile and benchmark ONNX models with Apache TVM, side by side with ONNX Runtime.")
app.add_typer(fleet_app, name="fleet")  # up, status, down: workbench/commands/fleet.py


@app.command()
@one_line_errors
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
    gpu = "; GPU: " + fp["gpus"][0]["name"] if fp["gpus"] else "; no GPU"
    console.print(f"This machine: {fp['cpu_model']} (LLVM: {llvm}, {fp['physical_cores']} physical cores){gpu}")
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
@one_line_errors
def models() -> None:
    """List the built-in model zoo and the ONNX files under models/ with their size and cost."""
    from workbench import models as zoo
    from workbench.dims import symbolic_dims
    from workbench.modelstats import compute_stats, count_parameters

    table = Table("model", "source", "inputs", "outputs", "parameters", "GFLOPs")
    sources = [zoo.resolve(n) for n in zoo.builtin_names()]
    sources += [zoo.ModelSource(p.stem, p, builtin=False) for p in zoo.user_model_paths()]
    for source in sources:
        try:
            model = zoo.load(source)
        except WorkbenchError as exc:
            table.add_row(escape(source.name), escape(str(source.path)), f"[red]{escape(str(exc))}[/red]", "", "", "")
            continue
        inputs = zoo.input_specs(model)
        # a model with dynamic dimensions beyond the batch has a cost only at sizes --dims names
        named = symbolic_dims(inputs)
        try:
            gflops = f"at --dims {', '.join(named)}" if named else f"{compute_stats(model).gflops:.4g}"
        except WorkbenchError as exc:
            gflops = f"[red]{escape(str(exc))}[/red]"
        sig = lambda specs: "\n".join(f"{s.name} {s.dtype}[{'x'.join(map(str, s.shape))}]" for s in specs)  # noqa: E731
        table.add_row(escape(source.name), "built-in" if source.builtin else escape(str(source.path)),
                      escape(sig(inputs)), escape(sig(zoo.output_specs(model))),
                      f"{count_parameters(model) / 1e6:.2f} M", gflops)
    console.print(table)


@app.command()
@one_line_errors
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
                  "side by side as tuning timed them (0: off)")] = 8,
         layout_pass: LayoutOpt = None, reference: ReferenceOpt = True, dims: DimsOpt = None) -> None:
    """Tune a model's kernels with MetaSchedule; records go to the target's shared database."""
    from workbench.compiler.tuner import TuneRequest
    from workbench.compiler.tuner import tune as run_tune
    from workbench.models import resolve
    from workbench.targets import get_profile, profile_with_rpc
    from workbench.tuneview import TuneDisplay, print_summary

    profile = profile_with_rpc(get_profile(target), rpc, rpc_key)
    source = resolve(model)
    request = TuneRequest(source=source, profile=profile,
                          trials=profile.total_trials if trials is None else trials,
                          batch_sizes=model_batch_sizes(source, batch_sizes, profile.batch_sizes),
                          database_dir=database_dir(database, target), seed=seed, rpc_wait_s=rpc_wait,
                          minutes=minutes, retime_pool=retime_pool, reference=reference,
                          dims=model_dims(source, dims))
    prefer_layout(source, request.database_dir, layout_pass)
    summary = run_tune(request, TuneDisplay())
    print_summary(summary)
    if summary.out_of_time:
        console.print(f"stopped at the --minutes {minutes:g} limit; rerun to continue from the records")
    if summary.interrupted:
        err_console.print(f"interrupted: the {summary.records_after} records measured so far are kept; "
                          "rerun the same command to continue")
        raise typer.Exit(130)


def compile_command(model: str, target: str, batch_sizes: str | None, database: Path | None, out: Path | None,
                    rtol: float, atol: float, layout: bool | None = None, reference: bool = True,
                    dims: str | None = None) -> Path:
    from workbench.compiler.builder import compile_model
    from workbench.compiler.reference_records import describe_shares

    request = compile_request(model, target, batch_sizes, database, out, rtol, atol, layout, reference, dims)
    source = request.source
    manifest = compile_model(request)
    console.print(describe_shares(manifest["tuning"]["schedules"], manifest["tuning"]["reference"]), soft_wrap=True,
                  markup=False)
    correctness = manifest["correctness"]
    if correctness["checked"]:
        worst = max((c for cs in correctness["per_batch"].values() for c in cs), key=lambda c: c["max_abs_error"])
        console.print("Correctness gate passed against ONNX Runtime "
                      f"(worst max abs error {worst['max_abs_error']:.3g}, "
                      f"max rel error {worst['max_rel_error']:.3g}; rtol {rtol:g}, atol {atol:g})")
    console.print(f"Compiled {source.name} for {target} at batch sizes "
                  f"{', '.join(map(str, manifest['batch_sizes']))}{describe_dims(request.dims)} -> {request.out_dir}")
    return request.out_dir


@app.command("compile")
@one_line_errors
def compile_(model: ModelOpt, target: TargetOpt, batch_sizes: BatchOpt = None, database: DatabaseOpt = None,
             out: Annotated[Path | None, typer.Option(
                 help="Output directory (default: build/<model>/<target>)")] = None,
             rtol: RtolOpt = DEFAULT_RTOL,
             atol: AtolOpt = DEFAULT_ATOL, layout_pass: LayoutOpt = None, reference: ReferenceOpt = True,
             dims: DimsOpt = None) -> None:
    """Build the model with the tuning records, export a library per batch size (and --dims combination), check
    it against ONNX Runtime."""
    compile_command(model, target, batch_sizes, database, out, rtol, atol, layout_pass, reference, dims)


ProtocolOpt = Annotated[str, typer.Option(help="workbench-server engines: rest (OIP v2 over HTTP, --wire applies) "
                                               "or grpc (OIP v2 over gRPC, always raw binary tensors)")]


@app.command()
@one_line_errors
def bench(model: ModelOpt = "mlp", target: TargetOpt = "host",
          engines: Annotated[str | None, typer.Option(
              help="Comma-separated engines (default: all): " + registry.described())] = None,
          concurrency: Annotated[str, typer.Option(
              help="Closed-loop concurrency, or a sweep such as 1,4,16,64")] = "1,64",
          batch_sizes: BatchOpt = None,
          rate: Annotated[float | None, typer.Option(
              help="Also run open loop: Poisson arrivals at this many requests/s")] = None,
          slo_p99_ms: Annotated[float | None, typer.Option(
              help="Also search the highest rate with p99 under this bound")] = None,
          duration: Annotated[float, typer.Option(help="Measured seconds per scenario")] = 10.0,
          warmup: Annotated[float, typer.Option(help="Warm-up seconds per scenario (discarded)")] = 2.0,
          min_requests: Annotated[int, typer.Option(help="Minimum measured requests per scenario")] = 200,
          url: Annotated[str | None, typer.Option(help="Drive a server already running at this URL instead")] = None,
          max_batch: Annotated[int, typer.Option(
              help="workbench-server: largest batch (tvm: capped at the largest compiled size)")] = 32,
          max_delay_ms: Annotated[float, typer.Option(
              help="workbench-server: longest wait for a batch to fill "
                   "(0: a batch is what queued while the engine was busy)")] = 0.0,
          server_workers: Annotated[int, typer.Option(help="workbench-server: processes sharing the port")] = 1,
          engine_threads: Annotated[int, typer.Option(help="workbench-server: engine threads (0: one a core)")] = 0,
          seed: Annotated[int, typer.Option(help="Seed of the inputs and of the Poisson schedule")] = 0,
          wire: Annotated[str, typer.Option(
              help="workbench-server requests: json (v2 JSON tensors) "
                   "or binary (the binary tensor extension)")] = "json",
          protocol: ProtocolOpt = "rest", rtol: RtolOpt = DEFAULT_RTOL, atol: AtolOpt = DEFAULT_ATOL,
          rpc: Annotated[str | None, typer.Option(
              help="Time the tvm engine on a device at this RPC tracker (host:port)")] = None,
          rpc_key: Annotated[str | None, typer.Option(help="Device key at the tracker")] = None,
          rpc_wait: Annotated[float, typer.Option(help="Seconds to wait for a device under the key")] = 30,
          decide_by: DecideByOpt = None, dims: DimsOpt = None,
          as_json: Annotated[bool, typer.Option(
              "--json", help="Print the summary as JSON instead of tables")] = False) -> None:
    """Measure TVM, ONNX Runtime and served engines side by side; write reports/<run-id>/records and results.csv."""
    import json as jsonlib

    from workbench.bench import BenchConfig, run_bench
    from workbench.benchview import BenchDisplay, decide_and_keep, print_tables, print_verdict
    from workbench.records import row
    from workbench.verdict import parse

    parse(decide_by)  # refused before a minute of measuring, not after
    chosen = tuple(e.strip() for e in engines.split(",") if e.strip()) if engines is not None else None
    config = BenchConfig(model=model, target=target, concurrency=parse_int_list("--concurrency", concurrency),
                         batch_sizes=parse_batch_sizes(batch_sizes, None), rate=rate, slo_p99_ms=slo_p99_ms,
                         duration_s=duration, warmup_s=warmup, min_requests=min_requests, url=url, max_batch=max_batch,
                         max_delay_ms=max_delay_ms, seed=seed, server_workers=server_workers,
                         engine_threads=engine_threads, rpc=rpc, rpc_key=rpc_key, rpc_wait_s=rpc_wait, wire=wire,
                         protocol=protocol, rtol=rtol, atol=atol, engines=chosen, dims=parse_dims(dims))
    run_dir, records = run_bench(config, BenchDisplay(enabled=not as_json))
    decision = decide_and_keep(run_dir, records, decide_by)
    if as_json:
        print(jsonlib.dumps({"run_dir": str(run_dir), "results": [row(r) for r in records],
                             "verdict": decision}, indent=2))
        return
    print_tables(records)
    console.print(f"records: {run_dir / 'records'}\nresults: {run_dir / 'results.csv'}")
    print_verdict(decision)


# workbench/commands/bundle.py; registered here, between bench and report, as `workbench --help` lists them
app.command()(bundle.export)
app.command()(bundle.serve)
app.command()(bundle.verify)


@app.command()
@one_line_errors
def report(run: Annotated[Path | None, typer.Argument(
               help="A reports/<run-id> folder (default: the latest run)")] = None,
           compare: Annotated[tuple[Path, Path] | None, typer.Option(help="Two run folders, A then B")] = None,
           also_a: Annotated[list[Path] | None, typer.Option(
               help="Another run of A's build, for --compare (repeat it): the spread between runs is measured")] = None,
           also_b: Annotated[list[Path] | None, typer.Option(
               help="Another run of B's build, for --compare (repeat it)")] = None,
           decide_by: DecideByOpt = None) -> None:
    """Write the HTML report of a bench run (reports/<run-id>/index.html), or compare two runs, or two
    sets of runs."""
    from workbench.paths import project_root
    from workbench.report.run import latest_run
    from workbench.report.write import write_comparison, write_report

    if compare is not None:
        if run is not None:
            raise WorkbenchError("give either a run folder or --compare A B, not both")
        path = write_comparison([compare[0], *(also_a or [])], [compare[1], *(also_b or [])])
    else:
        if also_a or also_b:
            raise WorkbenchError("--also-a and --also-b add runs to a comparison: give --compare A B with them")
        path = write_report(run or latest_run(project_root() / "reports"), decide_by)
    console.print(f"Report: {path}", soft_wrap=True)


@app.command()
@one_line_errors
def demo(model: Annotated[str, typer.Option(help="Built-in model to run the flow on")] = "mlp",
         trials: Annotated[int, typer.Option(help="Tuning trials")] = 64,
         duration: Annotated[float, typer.Option(help="Measured seconds per bench scenario")] = 5.0) -> None:
    """The main job on a built-in model: tune on this CPU, compile and check, bench every engine,
    export a serving bundle, and write the HTML report."""
    from workbench.bench import BenchConfig, run_bench
    from workbench.benchview import BenchDisplay, decide_and_keep, print_tables, print_verdict
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
    print_verdict(decide_and_keep(run_dir, records, None))
    archive, recommended = export_bundle(ExportRequest(
        compile_request(model, "host", None, None, None, DEFAULT_RTOL, DEFAULT_ATOL), project_root() / "bundles"))
    bundle.say_recommendation(recommended)
    report = write_report(run_dir)
    reference_run = _demo_reference_cnn(duration)
    console.print("\n[bold]Outputs[/bold]")
    console.print(f"  tuning database: {summary.database}")
    console.print(f"  compiled model:  {out_dir} (manifest.json + one library per batch size)")
    console.print(f"  bench records:   {run_dir / 'records'}")
    console.print(f"  serving bundle:  {archive} (workbench serve {archive})")
    console.print(f"  report:          {report}", soft_wrap=True)
    if reference_run is not None:
        console.print(f"  resnet18 from reference records: {reference_run}", soft_wrap=True)


def _demo_reference_cnn(duration: float, model: str = "resnet18") -> Path | None:
    """A real CNN compiled from the shipped reference records with no tuning here, timed against
    ONNX Runtime at batch 1; skipped, in one line, where this CPU's family has none for it."""
    from workbench.bench import BenchConfig, run_bench
    from workbench.benchview import BenchDisplay, decide_and_keep, print_tables, print_verdict
    from workbench.compiler import reference_records
    from workbench.manifest import read_compiled
    from workbench.paths import build_dir
    from workbench.report.write import write_report
    from workbench.targets import get_profile

    folder = reference_records.folder(get_profile("host"))
    tuned = folder is not None and any(model == s.get("model") for s in _sessions_in(folder))
    console.print(f"\n[bold]{model} from the reference records[/bold] (no tuning on this machine)")
    if not tuned:
        console.print(f"skipped: no reference records for {model} on this CPU's family ({folder or 'none'})")
        return None
    run_dir, records = run_bench(BenchConfig(model=model, target="host", engines=("tvm", "onnxruntime"),
                                             concurrency=(1,), batch_sizes=(1,), duration_s=duration, warmup_s=1.0),
                                 BenchDisplay(enabled=True))
    tuning = read_compiled(build_dir() / model / "host")["tuning"]
    console.print(reference_records.describe_shares(tuning["schedules"], tuning["reference"]), soft_wrap=True,
                  markup=False)
    print_tables(records)
    print_verdict(decide_and_keep(run_dir, records, None))
    return write_report(run_dir)


def _sessions_in(folder: Path) -> list[dict]:
    from workbench.compiler.database import read_sessions

    try:
        return read_sessions(folder)
    except WorkbenchError:  # a damaged sessions file: no demo of its records
        return []
