"""The one Rich console everything prints through (stderr for messages, stdout for results)."""

from rich.console import Console
from rich.markup import escape

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/yellow] {escape(message)}", soft_wrap=True)  # one line in a log


def for_tables() -> Console:
    """Where tables print: the terminal at its width, else (a pipe, a log file) 140 columns rather
    than rich's 80, which would fold or cut every cell."""
    if console.is_terminal:
        return console
    return Console(file=console.file, width=max(console.width, 140), highlight=False, color_system=None)
