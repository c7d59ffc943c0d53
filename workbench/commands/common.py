"""What every command module shares: the option types, the one-line error wrapper, the argument
parsers and the compile request that compile, export and demo build."""

import functools
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from workbench.console import err_console
from workbench.dims import DIMS_HELP
from workbench.errors import WorkbenchError

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="A built-in model name or a path to an .onnx file")]
TargetOpt = Annotated[str, typer.Option("--target", "-t", help="A target profile name (see `workbench targets`)")]
BatchOpt = Annotated[str | None, typer.Option(
    "--batch-sizes", help="Comma-separated, e.g. 1,8 (default: the profile's)")]
DimsOpt = Annotated[str | None, typer.Option("--dims", help=DIMS_HELP)]
DatabaseOpt = Annotated[Path | None, typer.Option(
    "--database", help="Tuning database directory (default: tuning_logs/<target>)")]
LayoutOpt = Annotated[bool | None, typer.Option(
    "--layout-pass/--no-layout-pass",
    help="Channels-last convolutions on CPUs (default: as this model was last tuned or compiled for the "
         "target, else on where the model has convolutions); tune and compile must agree for records to apply")]
ReferenceOpt = Annotated[bool, typer.Option(
    "--reference/--no-reference",
    help="Use the shipped reference tuning records of this CPU family (tuning_logs/reference/) for kernels "
         "the local database has not timed against them")]
RtolOpt = Annotated[float, typer.Option(help="Relative tolerance of the correctness gate against ONNX Runtime")]
AtolOpt = Annotated[float, typer.Option(help="Absolute tolerance of the correctness gate against ONNX Runtime")]
DecideByOpt = Annotated[str | None, typer.Option(
    help="The figure that decides what to deploy: latency (direct, paired, smallest batch; the default), "
         "throughput-c<N> (served at concurrency N) or slo")]


def one_line_errors(fn):
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


def model_batch_sizes(source, text: str | None, default: tuple[int, ...]) -> tuple[int, ...]:
    """--batch-sizes for this model: the inputs that share a dynamic first dimension get them; a
    model without one compiles at its own shapes (models.batch_sizes)."""
    from workbench.models import batch_sizes, load

    return batch_sizes(load(source), parse_batch_sizes(text, ()) or None, default)


def model_dims(source, text: str | None):
    """--dims for this model, checked against its inputs: every dynamic non-batch dimension named
    (a model with one and no --dims is refused, naming it) and no other (workbench/dims.py)."""
    from workbench.dims import check_dims, parse_dims
    from workbench.models import input_specs, load

    return check_dims(input_specs(load(source)), parse_dims(text))


def parse_int_list(option: str, text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise WorkbenchError(f"{option} takes comma-separated positive integers, e.g. 1,4,16,64 (got {text!r})")
    return values


def database_dir(database: Path | None, target: str) -> Path:
    from workbench.paths import tuning_logs_dir

    return database or tuning_logs_dir() / target


def prefer_layout(source, database: Path, layout: bool | None) -> None:
    """--[no-]layout-pass for tune: kept beside the records, so the tuned kernels are the ones built."""
    if layout is not None:
        from workbench.compiler.passes import prefer_layout as keep
        from workbench.models import load

        keep(database, load(source), layout)


def compile_request(model: str, target: str, batch_sizes: str | None, database: Path | None, out: Path | None,
                    rtol: float, atol: float, layout: bool | None = None, reference: bool = True,
                    dims: str | None = None):
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
                          batch_sizes=model_batch_sizes(source, batch_sizes, profile.batch_sizes),
                          database_dir=database_dir(database, target),
                          out_dir=out or build_dir() / source.name / target, rtol=rtol, atol=atol, layout=layout,
                          reference=reference, dims=model_dims(source, dims))
