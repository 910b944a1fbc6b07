"""docs/adding-a-method.md: its example plugin and suite are the real files under docs/examples/plugin_method,
and that suite runs end to end through Ray Tune, its plugin loaded from the suite's own folder."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pyarrow.compute as pc
import pytest

from kdbench.orchestrate import RunOptions, run_suite
from kdbench.results import open_results
from kdbench.store import Store
from kdbench.suite import expand, load_suite

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "adding-a-method.md"
EXAMPLE = ROOT / "docs" / "examples" / "plugin_method"
BLOCK = re.compile(r"<!-- file: (?P<path>[^ ]+) -->\n```\w*\n(?P<code>.*?)```", re.S)


def test_the_guides_code_blocks_are_the_example_files():
    blocks = {m["path"]: m["code"] for m in BLOCK.finditer(GUIDE.read_text())}
    assert set(blocks) == {"docs/examples/plugin_method/my_method.py", "docs/examples/plugin_method/suite.yaml"}
    for path, code in blocks.items():
        assert code == (ROOT / path).read_text(), f"the guide's copy of {path} differs from the file"


def test_the_example_suite_loads_its_plugin_from_its_own_folder():
    assert str(EXAMPLE) not in sys.path and str(EXAMPLE) not in os.environ.get("PYTHONPATH", "")
    suite = load_suite(str(EXAMPLE / "suite.yaml"))
    assert suite.plugins == (str(EXAMPLE / "my_method.py"),)
    assert "embedding_hint" in {m.name for m in suite.methods}


@pytest.mark.slow
def test_the_example_suite_runs_end_to_end(tmp_path, ray_local):
    store = Store(tmp_path / "store")
    counts = run_suite(str(EXAMPLE / "suite.yaml"), RunOptions(store=store.uri, track=False))
    plan = expand(load_suite(str(EXAMPLE / "suite.yaml")))
    assert (counts.failed, counts.run) == (0, len(plan))
    table = open_results(store).to_arrow()
    rows = table.filter(pc.equal(table["method"], "embedding_hint")).to_pylist()
    assert len(rows) == 1 and rows[0]["status"] == "ok" and rows[0]["kind"] == "student"
