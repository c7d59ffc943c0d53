"""`workbench export`, `serve` and `verify`: pack a compiled model as a serving bundle, serve
bundles, self-test one on this machine. `workbench.cli` registers them in that order."""

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from workbench.commands import common
from workbench.commands.common import compile_request, one_line_errors
from workbench.console import console
from workbench.errors import WorkbenchError
from workbench.tolerance import DEFAULT_ATOL, DEFAULT_RTOL


@one_line_errors
def export(model: common.ModelOpt, target: common.TargetOpt, batch_sizes: common.BatchOpt = None,
           database: common.DatabaseOpt = None,
           out: Annotated[Path, typer.Option(help="Folder the bundle archive is written to")] = Path("bundles"),
           version: Annotated[str, typer.Option(help="Version recorded in the manifest")] = "1",
           labels: Annotated[Path | None, typer.Option(help="Class names, one per line (image models)")] = None,
           rtol: common.RtolOpt = DEFAULT_RTOL,
           atol: common.AtolOpt = DEFAULT_ATOL, layout_pass: common.LayoutOpt = None,
           reference: common.ReferenceOpt = True, dims: common.DimsOpt = None) -> None:
    """Pack the compiled model (built now if missing or stale) as a serving bundle: <out>/<model>-<target>.tar.gz."""
    from workbench.bundle.export import ExportRequest, export_bundle

    request = compile_request(model, target, batch_sizes, database, None, rtol, atol, layout_pass, reference,
                              dims)
    archive, recommended = export_bundle(
        ExportRequest(request, out, version, labels),
        lambda: console.print(f"Compiling {request.source.name} for {target} (no current build)"))
    console.print(f"Exported {archive} ({archive.stat().st_size / 1e6:.1f} MB); "
                  f"check it with: workbench verify {archive}")
    say_recommendation(recommended)


def say_recommendation(recommended: dict) -> None:
    """Export packages TVM; the user hears it when the bench found something else better here."""
    from workbench.console import warn

    engine = recommended["engine"]
    if engine == "tvm":
        console.print(f"The bench recommends tvm: {recommended['sentence']}", soft_wrap=True, markup=False)
    elif engine is not None:
        warn(f"TVM is not the engine to deploy here: {recommended['sentence']} `workbench serve` serves this bundle "
             f"with {engine} by default; pass --engine tvm for the compiled libraries.")
    else:
        warn(f"no engine was recommended ({recommended['sentence']}); `workbench serve` defaults to tvm.")


def _bundle_args(bundle: Path | None, models: str | None) -> list:
    from workbench.bundle.serve import parse_models

    if (bundle is None) == (models is None):
        raise WorkbenchError("name one bundle (workbench serve bundles/x.tar.gz) or several with "
                             "--models a=bundles/a.tar.gz,b=bundles/b.tar.gz, not both")
    return [(None, bundle)] if bundle is not None else parse_models(models)


@one_line_errors
def serve(bundle: Annotated[Path | None, typer.Argument(help="A bundle archive or directory")] = None,
          models: Annotated[str | None, typer.Option(help="Several bundles: name=path,name=path")] = None,
          host: Annotated[str, typer.Option(help="Address to bind (0.0.0.0 to accept other machines)")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port to listen on")] = 8080,
          grpc_port: Annotated[int | None, typer.Option(
              help="Also serve OIP v2 over gRPC on this port (same --host; off unless given)")] = None,
          engine: Annotated[str | None, typer.Option(
              help="tvm (the compiled libraries), onnxruntime or openvino (the bundle's ONNX model); default: "
                   "the engine the bundle's bench run recommended, else tvm")] = None,
          max_batch: Annotated[int, typer.Option(help="Largest batch (capped at the largest compiled size)")] = 32,
          max_delay_ms: Annotated[float, typer.Option(help="Longest wait for a batch to fill")] = 0.0,
          max_queue: Annotated[int, typer.Option(help="Rows queued per model before answering 503")] = 2048,
          workers: Annotated[int, typer.Option(help="Processes sharing the port")] = 1,
          engine_threads: Annotated[int, typer.Option(
              help="Each engine's threads: ONNX Runtime's intra-op, OpenVINO's inference, TVM's pool (0: one per "
                   "physical core; 1 serves a model that computes in microseconds for less CPU)")] = 0,
          max_body_mb: Annotated[float, typer.Option(help="Largest request body accepted (413 above)")] = 64) -> None:
    """Serve bundles over the Open Inference Protocol v2 (and /predictions for image models) until SIGTERM."""
    from workbench.bundle.serve import serve_bundles
    from workbench.engines.registry import check_threads

    if not (0 < port < 65536) or workers < 1 or max_batch < 1 or max_queue < 1 or not max_delay_ms >= 0 \
            or not max_body_mb > 0:
        raise WorkbenchError("--port must be 1-65535, --workers/--max-batch/--max-queue at least 1, "
                             "--max-delay-ms at least 0 and --max-body-mb above 0")
    check_threads(engine_threads)
    if grpc_port is not None and not (0 < grpc_port < 65536 and grpc_port != port):
        raise WorkbenchError(f"--grpc-port must be 1-65535 and not --port ({port}), got {grpc_port}")
    serve_bundles(_bundle_args(bundle, models), engine=engine, host=host, port=port, grpc_port=grpc_port,
                  max_batch=max_batch,
                  max_delay_ms=max_delay_ms, max_queue_rows=max_queue, workers=workers,
                  max_body_bytes=int(max_body_mb * (1 << 20)), engine_threads=engine_threads)


@one_line_errors
def verify(bundle: Annotated[Path, typer.Argument(help="A bundle archive or directory")]) -> None:
    ("Self-test a bundle here: checksums, that this machine can run it, outputs against the stored ONNX Runtime "
     "ones.")  # the docstring, as one line of help
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
