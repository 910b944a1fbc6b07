"""Malformed suites fail before anything runs, with one message naming file, line and field."""

from __future__ import annotations

import pytest

from kdbench.suite import SpecError, load_suite

from .conftest import TINY_SUITE, write_suite

# (description, suite text, expected line, expected field path, a fragment of the message)
CASES = [
    ("zero temperature", TINY_SUITE.replace("methods: [none, kd]", "methods:\n  - none\n  - kd: {temperature: 0}"),
     14, "methods[1].kd.temperature", "must be > 0"),
    ("unknown top-level key with suggestion", TINY_SUITE + "seedz: [3]\n", 18, "seedz", "did you mean 'seeds'"),
    ("unknown recipe key", TINY_SUITE.replace("  batch_size: 64", "  batch_sise: 64"), 5,
     "recipe.batch_sise", "did you mean 'batch_size'"),
    ("wrong type", TINY_SUITE.replace("epochs: 3", "epochs: three"), 4, "recipe.epochs", "integer"),
    ("negative epochs", TINY_SUITE.replace("epochs: 3", "epochs: -1"), 4, "recipe.epochs", "must be > 0"),
    ("unknown architecture", TINY_SUITE.replace("arch: mlp, widths: [4]", "arch: mpl, widths: [4]"), 11,
     "students[0].arch", "did you mean 'mlp'"),
    ("unknown arch parameter", TINY_SUITE.replace("widths: [4]", "widht: [4]"), 11,
     "students[0].widht", "did you mean 'widths'"),
    ("unknown method", TINY_SUITE.replace("[none, kd]", "[none, kdd]"), 12, "methods[1]", "unknown method 'kdd'"),
    ("unknown dataset", TINY_SUITE.replace("name: synthetic", "name: synthtic"), 2, "dataset.name",
     "did you mean 'synthetic'"),
    ("empty students", TINY_SUITE.replace("students:\n  - {name: small, arch: mlp, widths: [4]}", "students: []")
     .replace("chains:\n  - [big, mid, small]\n", ""), 10, "students", "must not be empty"),
    ("empty seeds", TINY_SUITE.replace("seeds: [0, 1]", "seeds: []"), 17, "seeds", "must not be empty"),
    ("duplicate seed", TINY_SUITE.replace("seeds: [0, 1]", "seeds: [0, 1, 0]"), 17, "seeds[2]", "listed twice"),
    ("chain cycle", TINY_SUITE.replace("[big, mid, small]", "[big, mid, big, small]"), 14, "chains[0][2]", "cycle"),
    ("chain not ending at a student", TINY_SUITE.replace("[big, mid, small]", "[big, small, mid]"), 14,
     "chains[0][2]", "ends at a student"),
    ("chain unknown model", TINY_SUITE.replace("[big, mid, small]", "[big, midd, small]"), 14, "chains[0][1]",
     "did you mean 'mid'"),
    ("ensemble of unknown teacher", TINY_SUITE.replace("members: [big, mid]", "members: [big, small]"), 16,
     "ensembles[0].members[1]", "is not a teacher"),
    ("duplicate key", TINY_SUITE.replace("seeds: [0, 1]", "seeds: [0, 1]\nseeds: [2]"), 18, "seeds",
     "duplicate key (first given on line 17)"),
    ("duplicate name", TINY_SUITE.replace("{name: mid, arch", "{name: big, arch"), 9, "teachers[1].name",
     "duplicate name 'big'"),
    ("stop epoch past the recipe", TINY_SUITE.replace("widths: [64]}", "widths: [64], stop_epoch: 9}"), 8,
     "teachers[0].stop_epoch", "must be <= recipe.epochs"),
    ("milestone past the end", TINY_SUITE.replace("  batch_size: 64", "  batch_size: 64\n  schedule: "
                                                  "{name: step, milestones: [5]}"), 3, "recipe",
     "milestones must lie in"),
    ("method given as a list", TINY_SUITE.replace("[none, kd]", "[none, [kd]]"), 12, "methods[1]",
     "a method is a name"),
    ("kd without teachers", TINY_SUITE.replace("teachers:\n  - {name: big, arch: mlp, widths: [64]}\n"
                                               "  - {name: mid, arch: mlp, widths: [16]}\n", "")
     .replace("chains:\n  - [big, mid, small]\n", "").replace("ensembles:\n  - {name: both, members: [big, mid], "
                                                               "combine: geometric}\n", ""),
     9, "methods", "need a teacher"),
    ("bad ensemble combine", TINY_SUITE.replace("combine: geometric", "combine: median"), 16,
     "ensembles[0].combine", "must be one of"),
    ("missing recipe", TINY_SUITE.replace("recipe:\n  epochs: 3\n  batch_size: 64\n  optimizer: {name: sgd, lr: 0.1}\n",
                                          ""), None, "recipe", "required"),
    ("fractional gpus above one", TINY_SUITE + "resources: {gpus: 1.5}\n", 18, "resources", "whole number"),
    ("kd alpha out of range", TINY_SUITE.replace("[none, kd]", "[none, {kd: {alpha: 1.5}}]"), 12,
     "methods[1].kd.alpha", "must be <= 1"),
    ("dataset size zero", TINY_SUITE.replace("n_train: 256", "n_train: 0"), 2, "dataset.n_train", "must be > 0"),
    ("ensemble of one", TINY_SUITE.replace("members: [big, mid]", "members: [big]"), 16, "ensembles[0].members",
     "needs at least 2 items"),
    ("plugin that cannot be imported", "plugins: [no_such_module_xyz]\n" + TINY_SUITE, 1, "plugins[0]",
     "cannot import 'no_such_module_xyz'"),
    ("plugin file missing beside the suite", TINY_SUITE + "plugins: [lib/nope.py]\n", 18, "plugins[0]",
     "cannot import 'lib/nope.py': FileNotFoundError"),
    ("chain too short", TINY_SUITE.replace("[big, mid, small]", "[big, small]"), 14, "chains[0]",
     "at least 3 names"),
    ("methods not a list", TINY_SUITE.replace("methods: [none, kd]", "methods: kd"), 12, "methods", "valid list"),
    ("pair with an unknown student", TINY_SUITE + "pairs: [[big, smal]]\n", 18, "pairs[0][1]",
     "did you mean 'small'"),
    ("reference file missing", TINY_SUITE + "reference: nope.csv\n", 18, "reference", "file not found"),
    ("bad recipe change of a model", TINY_SUITE.replace("widths: [4]}", "widths: [4], recipe: {optimizer: {lr: -1}}}"),
     11, "students[0].recipe.optimizer.lr", "must be > 0"),
    ("not YAML", "name: [unclosed\n", 2, "<top>", "not valid YAML"),
    ("a list at the top", "- a\n- b\n", 1, "<top>", "mapping"),
    ("empty file", "", 1, "<top>", "empty"),
]


@pytest.mark.parametrize("text,line,field,fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_suite_names_file_line_field(tmp_path, text, line, field, fragment):
    path = write_suite(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_suite(str(path))
    message = str(info.value)
    where = f"{path}:{line}: " if line else f"{path}"
    assert message.startswith(where), message
    assert f": {field}: " in message, message
    assert fragment in message, message


def test_non_utf8_bytes_name_the_line(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_bytes(b"name: ok\ndescription: caf\xe9\n")
    with pytest.raises(SpecError, match=r"suite\.yaml:2: <top>: not UTF-8"):
        load_suite(str(path))


def test_huge_file_is_refused_without_parsing(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_bytes(b"# " + b"x" * (11 * 2**20))
    with pytest.raises(SpecError, match="larger than 1,024 KiB"):
        load_suite(str(path))


def test_scientific_notation_is_a_number(tmp_path):
    path = write_suite(tmp_path, TINY_SUITE.replace("lr: 0.1", "lr: 1e-3"))
    assert load_suite(str(path)).recipe.optimizer.lr == pytest.approx(1e-3)


def test_yaml_tags_cannot_construct_objects(tmp_path):
    path = write_suite(tmp_path, TINY_SUITE.replace("name: tiny", "name: !!python/name:os.system ''"))
    with pytest.raises(SpecError, match="cannot read value"):
        load_suite(str(path))
