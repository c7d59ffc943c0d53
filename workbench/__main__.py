"""`python -m workbench`: the CLI, as a bundle's runtime/ copy runs it without an install."""

from workbench.cli import app

app(prog_name="workbench")
