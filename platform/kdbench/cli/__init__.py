"""The `kdbench` command. Bad input ends with one clear line on stderr and exit status 2.

One module per group of commands; importing the package registers them all on `app`, in the order `--help` lists
them.
"""

# isort: off
# Each module registers its commands on `app`; `kdbench --help` lists them in this order.
from .common import app
from . import suites, results, tracking, cluster  # noqa: F401
# isort: on

__all__ = ["app"]
