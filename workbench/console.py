"""The one Rich console everything prints through (stderr for messages, stdout for results)."""

from rich.console import Console
from rich.markup import escape

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/yellow] {escape(message)}")
