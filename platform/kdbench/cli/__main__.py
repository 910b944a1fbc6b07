"""`python -m kdbench.cli`: the `kdbench` command."""

from kdbench.cli import app

app()
