"""The package's layering (pyproject.toml's [tool.importlinter] contracts) holds: lower layers never import
higher ones, orchestrate's modules import one way, and the engine side loads no Ray, MLflow, DuckDB or Optuna."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    assert lint.exists(), f"import-linter is not installed next to {sys.executable} (the `test` extra has it)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "platform"),
                                                                      os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([str(lint), "--no-cache", "pyproject.toml"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"lint-imports exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
