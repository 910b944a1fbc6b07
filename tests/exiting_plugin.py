"""A plugin that exits the interpreter on import (tests/test_hostile_input.py): kdbench must report it."""

import sys

sys.exit(3)
