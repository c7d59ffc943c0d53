"""`workbench fleet up|status|down`: a local RPC tracker and servers (TVM's own) for distributed tuning."""

from typing import Annotated

import typer
from rich.table import Table

from workbench.commands.common import one_line_errors
from workbench.console import console
from workbench.errors import WorkbenchError

fleet_app = typer.Typer(help="A local RPC tracker and servers (TVM's own) for distributed tuning.",
                        no_args_is_help=True)


@fleet_app.command("up")
@one_line_errors
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
@one_line_errors
def fleet_status(tracker: Annotated[str | None, typer.Option(
        help="host:port (default: the fleet that is up)")] = None) -> None:
    """Keys, free and busy devices, and queued requests, as the tracker sees them."""
    from workbench import fleet
    from workbench.engines.rpc import registered, summary
    from workbench.targets import parse_tracker

    if tracker is None:
        state = fleet.read_state()
        if state is None:
            raise WorkbenchError("no fleet is up here; start one with `workbench fleet up`, "
                                 "or pass --tracker host:port")
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
@one_line_errors
def fleet_down() -> None:
    """Stop the tracker and servers that `fleet up` started."""
    from workbench import fleet

    state = fleet.down()
    console.print("no fleet was up" if state is None else f"fleet down: tracker {state.tracker} and "
                  f"{state.servers} servers stopped")
