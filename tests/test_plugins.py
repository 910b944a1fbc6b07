"""`plugins:` load from the suite's own folder — `name` for name.py beside the suite, or a relative path to a
.py file — with no PYTHONPATH; importable module names keep working; Ray workers get absolute paths."""

from __future__ import annotations

import os
import textwrap

import pytest

from kdbench.methods import METHODS
from kdbench.suite import SpecError, load_suite
from kdbench.suite.plugins import import_plugins, plugin_location

from .conftest import TINY_SUITE, write_suite

PLUGIN = '''
from kdbench.methods import Method, Needs, register_method
import torch.nn.functional as F


@register_method
class Plugged(Method):
    """Params defaults: (none)"""

    name = "{name}"
    needs = Needs(teacher=True)

    def forward(self, batch, student, teacher, state):
        return {{"ce": F.cross_entropy(student.logits, batch.y)}}
'''


def _plugin(folder, rel: str, name: str) -> str:
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(PLUGIN.format(name=name)))
    return str(path)


def test_a_name_beside_the_suite_and_a_relative_path_both_load_without_pythonpath(tmp_path):
    a = _plugin(tmp_path, "beside_plugin_a.py", "plugged_beside")
    b = _plugin(tmp_path, "lib/plugin_b.py", "plugged_by_path")
    text = TINY_SUITE.replace("methods: [none, kd]", "methods: [none, plugged_beside, plugged_by_path]")
    suite = load_suite(str(write_suite(tmp_path, text + "plugins: [beside_plugin_a, lib/plugin_b.py]\n")))
    assert suite.plugins == (a, b) and all(os.path.isabs(p) for p in suite.plugins)
    assert {m.name for m in suite.methods} == {"none", "plugged_beside", "plugged_by_path"}
    import_plugins(suite.plugins)  # as a Ray worker does: once per process, no second registration
    load_suite(str(tmp_path / "suite.yaml"))  # loading again does not register twice either


def test_importable_module_names_still_work(tmp_path):
    suite = load_suite(str(write_suite(tmp_path, TINY_SUITE + "plugins: [tests.faulty_plugin]\n")))
    assert suite.plugins == ("tests.faulty_plugin",) and "test_raise_in_loss" in METHODS


def test_where_an_entry_is_looked_for(tmp_path):
    (tmp_path / "mine.py").write_text("")
    assert plugin_location("mine", str(tmp_path)) == str(tmp_path / "mine.py")
    assert plugin_location("sub/x.py", str(tmp_path)) == str(tmp_path / "sub" / "x.py")
    assert plugin_location("../x.py", str(tmp_path / "a")) == str(tmp_path / "x.py")
    assert plugin_location("not_beside", str(tmp_path)) == "not_beside"  # a module name, imported as usual
    assert plugin_location("tests.faulty_plugin", str(tmp_path)) == "tests.faulty_plugin"


def test_a_broken_plugin_beside_the_suite_is_one_line_with_file_line_and_field(tmp_path):
    (tmp_path / "broken.py").write_text("raise RuntimeError('oops in the plugin')\n")
    path = write_suite(tmp_path, TINY_SUITE + "plugins: [broken]\n")
    with pytest.raises(SpecError) as e:
        load_suite(str(path))
    assert str(e.value).startswith(f"{path}:18: plugins[0]: cannot import 'broken': RuntimeError: oops in the plugin")
    with pytest.raises(SpecError):  # a failed import is not half-registered: it fails again the same way
        load_suite(str(path))
