"""Hostile suites and command lines: every one is refused before any work, as one `error:` line with exit
status 2 — no traceback, no hang, no memory blow-up, nothing written, no Ray (limits: kdbench/suite/limits.py)."""

from __future__ import annotations

import os
import re
import time

import pytest
from typer.testing import CliRunner

from kdbench.cli import app

from .conftest import TINY_SUITE, write_suite

runner = CliRunner()

LAUGHS = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9) if i else ', '.join(['x'] * 9)}]\n" for i in range(9))


def _sub(old: str, new: str) -> str:
    assert old in TINY_SUITE
    return TINY_SUITE.replace(old, new)


# (id, suite text, field named in the message, a fragment of the message)
CASES = [
    # YAML
    ("billion laughs", TINY_SUITE + "x-laughs:\n" + "".join("  " + line for line in LAUGHS.splitlines(True)),
     "x-laughs", "more than 20,000 values"),
    ("self-referencing alias", TINY_SUITE + "x: &a [1, *a]\n", "x[1]", "a cycle"),
    ("self-referencing mapping", TINY_SUITE + "x: &a {b: *a}\n", "x.b", "a cycle"),
    ("tag on a key", TINY_SUITE + "!!python/name:os.system k: 1\n", "<top>", "keys must be text"),
    ("sequence as a key", TINY_SUITE + "? [a, b]\n: 1\n", "<top>", "keys must be text"),
    ("deeply nested key", TINY_SUITE + "? " + "[" * 5000 + "]" * 5000 + "\n: 1\n", "<top>", "nested more than 64"),
    ("number as a key", TINY_SUITE + "3: x\n", "<top>", "keys must be text"),
    ("merge of a scalar", _sub("seeds: [0, 1]", "seeds: [0, 1]\nx: {<<: 3}"), "x.<<", "merge key"),
    ("deep nesting", TINY_SUITE + "x: " + "[" * 500_000 + "]" * 500_000 + "\n", "x[0]", "nested more than 64"),
    ("deep block nesting", TINY_SUITE + "x:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 80)) + " " * 80
     + "v\n", "x.k1.k2", "nested more than 64"),
    ("impossible date", _sub("name: tiny", "name: tiny\ndescription: 2001-13-45"), "description", "cannot read value"),
    ("int of 5000 digits", _sub("epochs: 3", "epochs: " + "9" * 5000), "recipe.epochs", "cannot read value"),
    ("bad explicit int", _sub("epochs: 3", "epochs: !!int zz"), "recipe.epochs", "cannot read value"),
    ("control character", _sub("name: tiny", "name: ti\x07ny"), "<top>", "not valid YAML"),
    ("undefined alias", _sub("epochs: 3", "epochs: *nope"), "<top>", "undefined alias"),
    # non-finite numbers, anywhere
    ("inf learning rate", _sub("lr: 0.1", "lr: .inf"), "recipe.optimizer.lr", "finite number"),
    ("nan weight decay", _sub("lr: 0.1", "lr: 0.1, weight_decay: .nan"), "recipe.optimizer.weight_decay", "finite"),
    ("inf method hyperparameter", _sub("[none, kd]", "[none, {kd: {temperature: .inf}}]"),
     "methods[1].kd.temperature", "finite number"),
    ("-inf dataset parameter", _sub("n_train: 256", "n_train: 256, label_noise: -.inf"), "dataset.label_noise",
     "finite number"),
    # strict whole numbers
    ("epochs 1e12", _sub("epochs: 3", "epochs: 1e12"), "recipe.epochs", "valid integer"),
    ("epochs true", _sub("epochs: 3", "epochs: true"), "recipe.epochs", "valid integer"),
    ("epochs as text", _sub("epochs: 3", "epochs: '3'"), "recipe.epochs", "valid integer"),
    ("epochs 2.0", _sub("epochs: 3", "epochs: 2.0"), "recipe.epochs", "valid integer"),
    ("width 4.0", _sub("widths: [4]}", "widths: [4.0]}"), "students[0].widths[0]", "valid integer"),
    ("seed true", _sub("seeds: [0, 1]", "seeds: [0, true]"), "seeds[1]", "valid integer"),
    # ranges
    ("seed 2e13", _sub("seeds: [0, 1]", "seeds: [0, 20000000000000]"), "seeds[1]", "must be <= 4294967295"),
    ("seed 1e20", _sub("seeds: [0, 1]", "seeds: [0, 100000000000000000000]"), "seeds[1]", "must be <="),
    ("negative seed", _sub("seeds: [0, 1]", "seeds: [-1]"), "seeds[0]", "must be >= 0"),
    ("teacher seed", _sub("widths: [64]}", "widths: [64], seed: 99999999999}"), "teachers[0].seed", "must be <="),
    ("absurd epochs", _sub("epochs: 3", "epochs: 1000000000"), "recipe.epochs", "must be <= 100000"),
    ("absurd batch", _sub("batch_size: 64", "batch_size: 10000000000"), "recipe.batch_size", "must be <="),
    ("absurd lr", _sub("lr: 0.1", "lr: 1e30"), "recipe.optimizer.lr", "must be <= 1000"),
    ("absurd retries", TINY_SUITE + "retries: 100000\n", "retries", "must be <= 100"),
    ("absurd cpus", TINY_SUITE + "resources: {cpus: 1e9}\n", "resources.cpus", "must be <="),
    ("absurd width", _sub("widths: [4]}", "widths: [100000000000]}"), "students[0].widths[0]", "must be <="),
    ("huge model", _sub("widths: [4]}", "widths: [2000000000, 2000000000]}"), "students[0]", "parameters, more than"),
    ("huge input", _sub("dim: 8", "dim: 2000000000"), "dataset", "values per sample"),
    ("huge dataset", _sub("n_train: 256", "n_train: 200000000"), "dataset", "training samples exceed"),
    ("method stop_epoch past the epochs", _sub("[none, kd]", "[none, {kd: {stop_epoch: 50}}]"),
     "methods[1].kd.stop_epoch", "must be <= recipe.epochs"),
    # names
    ("500-character suite name", _sub("name: tiny", "name: " + "n" * 500), "name", "at most 64 characters"),
    ("500-character model name", _sub("{name: small,", "{name: " + "s" * 500 + ","), "students[0].name",
     "at most 64 characters"),
    ("long unknown method", _sub("[none, kd]", "[none, " + "k" * 100_000 + "]"), "methods[1]", "unknown method"),
    # size
    ("100,000 seeds", _sub("seeds: [0, 1]", "seeds: [" + ", ".join(map(str, range(100_000))) + "]"), "seeds",
     "more than 20,000 values"),
    ("plan beyond the limit", _sub("seeds: [0, 1]", "seeds: [" + ", ".join(map(str, range(5000))) + "]"), "seeds",
     "more than the limit of 20,000"),
    ("duplicate among 15k seeds", _sub("seeds: [0, 1]", "seeds: [" + ", ".join(map(str, range(15_000))) + ", 7]"),
     "seeds[15000]", "listed twice"),
    # plugins and weights
    ("plugin that exits", "plugins: [tests.exiting_plugin]\n" + TINY_SUITE, "plugins[0]", "SystemExit: 3"),
]


def _refused(result, path, field, fragment, store=None):
    text = " ".join(result.output.split())
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert result.exit_code == 2, result.output[-2000:]
    assert "Traceback" not in result.output and len(lines) <= 3, result.output[-2000:]
    assert text.startswith(f"error: {path}:"), text[:500]
    assert re.search(rf": {re.escape(field)}[:.\[]", text) and fragment in text, text[:500]  # the field (or in it)
    assert len(text) < 1000  # one readable line, whatever the input's size


@pytest.mark.parametrize("text,field,fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_validate_refuses_hostile_suites_in_one_line(tmp_path, text, field, fragment):
    path = write_suite(tmp_path, text)
    start = time.monotonic()
    result = runner.invoke(app, ["validate", str(path)])
    assert time.monotonic() - start < 30
    _refused(result, path, field, fragment)


@pytest.mark.parametrize("text,field,fragment", [c[1:] for c in CASES[::4]], ids=[c[0] for c in CASES[::4]])
def test_run_refuses_hostile_suites_before_anything_is_written(tmp_path, text, field, fragment, monkeypatch):
    import kdbench.orchestrate.ray_session as ray_session

    monkeypatch.setattr(ray_session, "init_ray", lambda *a, **k: pytest.fail("Ray started for a bad suite"))
    path = write_suite(tmp_path, text)
    store = tmp_path / "store"
    result = runner.invoke(app, ["run", str(path), "--store", str(store)])
    _refused(result, path, field, fragment)
    assert not store.exists()


def test_merge_keys_are_supported(tmp_path):
    from kdbench.suite import load_suite

    text = _sub("teachers:\n  - {name: big, arch: mlp, widths: [64]}",
                "x-base: &mlp {arch: mlp, widths: [64]}\nteachers:\n  - {<<: *mlp, name: big}")
    text = text.replace("{name: mid, arch: mlp, widths: [16]}", "{<<: *mlp, name: mid, widths: [16]}")
    path = write_suite(tmp_path, text.replace("name: tiny", "name: tiny\nx-base: 1") if False else text)
    with pytest.raises(Exception, match="x-base"):  # an unknown top-level key is still an unknown key
        load_suite(str(path))
    text = text.replace("x-base: &mlp {arch: mlp, widths: [64]}\n", "").replace(
        "teachers:\n  - {<<: *mlp, name: big}", "teachers:\n  - &mlp {name: big, arch: mlp, widths: [64]}")
    suite = load_suite(str(write_suite(tmp_path, text)))
    assert [(t.name, t.model.params["widths"]) for t in suite.teachers] == [("big", [64]), ("mid", [16])]


def test_a_merged_value_is_blamed_on_its_own_line(tmp_path):
    from kdbench.suite import SpecError, load_suite

    text = _sub("teachers:\n  - {name: big, arch: mlp, widths: [64]}",
                "teachers:\n  - &t {name: big, arch: mlp, widths: [64]}")
    text = text.replace("{name: mid, arch: mlp, widths: [16]}", "{<<: *t,\n     name: mid,\n     widths: [0]}")
    path = write_suite(tmp_path, text)
    with pytest.raises(SpecError, match=r":11: teachers\[1\]\.widths: widths must all be > 0"):
        load_suite(str(path))
    text = text.replace("widths: [0]}", "dropout: 0.1}").replace("&t {name: big, arch: mlp, widths: [64]}",
                                                                  "&t {name: big, arch: mlp,\n      widths: [-2]}")
    with pytest.raises(SpecError, match=r":9: teachers\[0\]\.widths: widths must all be > 0"):  # the anchor's line
        load_suite(str(write_suite(tmp_path, text)))


def test_a_weights_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    text = _sub("{name: big, arch: mlp, widths: [64]}", "{name: big, arch: mlp, widths: [64], weights: junk.pt}")
    path = write_suite(tmp_path, text.replace("chains:\n  - [big, mid, small]\n", ""))
    _refused(runner.invoke(app, ["validate", str(path)]), path, "teachers[0].weights", "not a PyTorch checkpoint")


def test_a_weights_file_that_holds_code_is_refused(tmp_path):
    import pickle

    import torch

    torch.save({"w": torch.zeros(2)}, tmp_path / "ok.pt")
    (tmp_path / "code.pt").write_bytes(pickle.dumps(print))  # a legacy pickle naming a callable
    base = TINY_SUITE.replace("chains:\n  - [big, mid, small]\n", "")
    for name, fragment in (("code.pt", "weights-only"),):
        path = write_suite(tmp_path, base.replace("widths: [64]}", f"widths: [64], weights: {name}}}", 1))
        _refused(runner.invoke(app, ["validate", str(path)]), path, "teachers[0].weights", fragment)


@pytest.mark.parametrize("content,fragment", [(b"\xff\xfe", "not a CSV table"), (b"a,b\n1,2,3\n", "not a CSV table"),
                                              (b"x" * (11 * 2**20), "larger than 10 MiB")],
                         ids=["not UTF-8", "ragged rows", "11 MiB"])
def test_a_reference_that_is_not_a_small_csv_is_refused(tmp_path, content, fragment):
    (tmp_path / "ref.csv").write_bytes(content)
    path = write_suite(tmp_path, TINY_SUITE + "reference: ref.csv\n")
    _refused(runner.invoke(app, ["validate", str(path)]), path, "reference", fragment)


def test_the_plan_limit_is_configurable(tmp_path, monkeypatch):
    from kdbench.suite import SpecError, load_suite

    path = write_suite(tmp_path, TINY_SUITE)
    monkeypatch.setenv("KDBENCH_MAX_JOBS", "5")
    with pytest.raises(SpecError, match=r"up to \d+ jobs, more than the limit of 5 \(set KDBENCH_MAX_JOBS"):
        load_suite(str(path))
    monkeypatch.setenv("KDBENCH_MAX_JOBS", "lots")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "KDBENCH_MAX_JOBS='lots' must be a whole number" in result.output
    monkeypatch.setenv("KDBENCH_MAX_JOBS", "100000")
    assert load_suite(str(path)).name == "tiny"


def test_checks_are_linear_in_the_suite(tmp_path, monkeypatch):
    """15,000 seeds (the duplicate check was quadratic: 20,000 took 14 s) load in seconds."""
    from kdbench.suite import load_suite

    monkeypatch.setenv("KDBENCH_MAX_JOBS", "1000000")
    seeds = "seeds: [" + ", ".join(map(str, range(15_000))) + "]"
    path = write_suite(tmp_path, _sub("seeds: [0, 1]", seeds).replace("[none, kd]", "[none]")
                       .replace("chains:\n  - [big, mid, small]\n", ""))
    start = time.monotonic()
    assert len(load_suite(str(path)).seeds) == 15_000
    assert time.monotonic() - start < 10


PROBES = [  # (arguments, a fragment of the one error line)
    (["validate", "{suite}", "--tflops", "0"], "--tflops must be a number > 0"),
    (["validate", "{suite}", "--tflops", "inf"], "--tflops must be"),
    (["validate", "{suite}", "--tflops", "x"], "Invalid value for '--tflops'"),
    (["validate", "{suite}", "--no-such-option"], "No such option"),
    (["no-such-command"], "No such command"),
    (["run", "{suite}", "--store", "{store}", "--num-cpus", "-1"], "--num-cpus must be a whole number > 0"),
    (["run", "{suite}", "--store", "{store}", "--num-cpus", "0"], "--num-cpus must be"),
    (["query", "select 1", "--store", "{store}", "--format", "xml"], "unknown --format 'xml'"),
    (["query", "selec 1", "--store", "{store}"], "Parser Error"),
    (["query", "COPY (select 1 as x) TO '{tmp}/out.csv'", "--store", "{store}"], "disabled by configuration"),
    (["query", "ATTACH '{tmp}/x.db'", "--store", "{store}"], "disabled by configuration"),
    (["query", "INSTALL httpfs", "--store", "{store}"], "disabled by configuration"),
    (["query", "select * from read_csv('/etc/passwd')", "--store", "{store}"], "disabled by configuration"),
    (["query", "SET enable_external_access = true", "--store", "{store}"], "locked"),
    (["sync", "no-such-suite", "--store", "{store}"], "no suite 'no-such-suite'"),
    (["leaderboard", "[/]", "--store", "{store}"], "no suite '[/]'"),
    (["ui", "--port", "70000", "--store", "{store}"], "--port must be"),
    (["query", "select 1", "--store", ""], "names no folder or bucket"),
    (["query", "select 1", "--store", "s3://"], "names no folder or bucket"),
    (["query", "select * from range(20000000)", "--store", "{store}"], "add a LIMIT"),
    (["validate", "{tmp}"], "not a regular file"),
    (["validate", "/dev/zero"], "not a regular file"),
]


@pytest.mark.parametrize("args,fragment", PROBES, ids=[f"{i}-{p[0][0]}" for i, p in enumerate(PROBES)])
def test_hostile_command_lines_get_one_error_line(tmp_path, args, fragment, monkeypatch):
    import kdbench.orchestrate.ray_session as ray_session

    monkeypatch.setattr(ray_session, "init_ray", lambda *a, **k: pytest.fail("Ray started for a bad command"))
    suite, store = write_suite(tmp_path, TINY_SUITE), tmp_path / "store"
    args = [a.format(suite=suite, store=store, tmp=tmp_path) for a in args]
    start = time.monotonic()
    result = runner.invoke(app, args)
    assert time.monotonic() - start < 30  # INSTALL httpfs used to try the network for ~70 s
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert fragment in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suite.yaml"]  # nothing written


def test_a_pipe_as_the_suite_does_not_hang(tmp_path):
    fifo = tmp_path / "suite.yaml"
    os.mkfifo(fifo)  # opening it would block until a writer came
    result = runner.invoke(app, ["validate", str(fifo)])
    assert result.exit_code == 2 and "not a regular file" in result.output


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "inf"])
def test_a_malformed_report_interval_is_one_error_line(tmp_path, monkeypatch, value):
    import kdbench.orchestrate.ray_session as ray_session

    monkeypatch.setattr(ray_session, "init_ray", lambda *a, **k: pytest.fail("Ray started"))
    monkeypatch.setenv("KDBENCH_REPORT_INTERVAL_S", value)
    store = tmp_path / "store"
    result = runner.invoke(app, ["run", str(write_suite(tmp_path, TINY_SUITE)), "--store", str(store)])
    assert result.exit_code == 2 and "KDBENCH_REPORT_INTERVAL_S" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not store.exists()


def test_validate_sizes_a_large_model_without_allocating_it(tmp_path):
    """A 1.6-billion-parameter student (6.4 GB of fp32 weights) and CRD's memory of 19 M samples are within the
    limits: validate sizes them, builds their compatibility checks and counts their FLOPs on the meta device."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    text = _sub("widths: [4]}", "widths: [40000, 40000]}").replace("[none, kd]", "[none, kd, crd]")
    path = write_suite(tmp_path, text.replace("n_train: 256", "n_train: 19000000"))
    code = ("import json, resource, sys\nfrom kdbench.cli import app\n"
            "try:\n    app(['validate', sys.argv[1]])\nexcept SystemExit as e:\n    code = e.code\n"
            "print(json.dumps([code, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024]))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "platform"), str(root)])}
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env,
                          timeout=300)
    status, peak_mib = json.loads(proc.stdout.strip().splitlines()[-1])
    assert status == 0, proc.stderr[-2000:]
    assert peak_mib < 2048, peak_mib  # allocated, the student alone would be 6.4 GB
