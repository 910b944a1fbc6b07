"""Issue 4's studies: identities that stay put, teacher snapshots of one run, early-stopped KD, and the
offline twins of the study suites run end to end (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kdbench import checkpoint
from kdbench.engine import run_job
from kdbench.engine.loop import evaluate
from kdbench.methods.base import Batch, TeacherOutput, TrainState, create_method
from kdbench.methods.kd import KDParams
from kdbench.paths import HISTORY, snapshot_file
from kdbench.paths import MODEL as MODEL_FILE
from kdbench.store import Store
from kdbench.suite import SpecError, expand, load_suite
from kdbench.tasks.classification import Classification
from kdbench.zoo.datasets.base import data_checked_later
from kdbench.zoo.models import create_model
from kdbench.zoo.models.base import ModelOutput

from .conftest import TINY_SUITE, write_suite
from .test_glue_suite import glue_folder

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "job_ids.json"

SNAP_SUITE = """\
name: snap
dataset: {name: synthetic, n_train: 256, n_val: 128, n_test: 256, dim: 8, num_classes: 4}
recipe: {epochs: 3, batch_size: 64, optimizer: {name: sgd, lr: 0.1}}
teachers:
  - {name: big, arch: mlp, widths: [32], stop_epochs: [1, 2]}
students:
  - {name: small, arch: mlp, widths: [4]}
methods: [none, kd, {kd: {stop_epoch: 1}}]
seeds: [0]
"""


def _fake_data_root(root: Path) -> None:
    """The official file names of CIFAR-10/100 and MNIST (validation checks they exist; nothing reads them)."""
    names = {"cifar-100-python": ("train", "test", "meta"),
             "cifar-10-batches-py": (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"),
             ".": tuple(f"{p}-{k}" for p in ("train", "t10k") for k in ("images-idx3-ubyte", "labels-idx1-ubyte"))}
    for folder, files in names.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name in files:
            (root / folder / name).write_bytes(b"")
    _fake_pose_videos(root)
    glue_folder(root)  # BERT's folder, a corpus and GLUE's TSV files (distilbert_glue.yaml)


def _fake_pose_videos(root: Path) -> None:
    """Penn Action labels with train flags and Sub-JHMDB split files (validation reads the splits; no frame)."""
    from scipy.io import savemat

    for folder in ("frames", "labels", "joint_positions", "Rename_Images", "sub_splits"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for i in range(60):
        savemat(root / "labels" / f"{i:04d}.mat", {"train": [[1 if i < 55 else -1]]})
    (root / "sub_splits" / "run_test_split1.txt").write_text("".join(f"v{i}.avi {1 if i < 25 else 2}\n"
                                                                     for i in range(27)))


def test_existing_job_ids_are_unchanged(tmp_path, monkeypatch):
    """Every benchmark suite's ids, recorded before the job-model redesign (tests/fixtures/job_ids.json), come
    out equal: a store written before it is reused whole."""
    _fake_data_root(tmp_path)
    monkeypatch.setenv("KDBENCH_DATA_ROOT", str(tmp_path))
    expected = json.loads(FIXTURE.read_text())
    suites = sorted((ROOT / "benchmarks" / "suites").glob("*.yaml"))
    assert {f"benchmarks/suites/{p.name}" for p in suites} <= set(expected), "a new suite: add its ids to the fixture"
    for path in suites:
        key = f"benchmarks/suites/{path.name}"
        with data_checked_later():  # an ImageFolder root absent here (imagenet_kd): ids do not depend on the data
            assert sorted(e.job_id for e in expand(load_suite(str(path))).entries) == expected[key], key
    mid = "{name: mid, arch: mlp, widths: [16]}"
    text = TINY_SUITE.replace(mid, mid[:-1] + ", stop_epoch: 2}")
    got = sorted(e.job_id for e in expand(load_suite(str(write_suite(tmp_path, text)))).entries)
    assert got == expected["tiny_with_stop_epoch"]


def test_snapshots_and_eskd_enter_identity_only_when_set(tmp_path):
    plan = expand(load_suite(str(write_suite(tmp_path, SNAP_SUITE))))
    teachers = [e for e in plan.entries if e.job.kind == "teacher"]
    assert len(teachers) == 1 and teachers[0].job.snapshots == (1, 2)  # one run, not one per stop epoch
    assert teachers[0].job.identity()["snapshots"] == [1, 2]
    students = {(e.teacher, e.job.method.params.get("stop_epoch")): e.job for e in plan.entries
                if e.job.kind == "student"}
    assert set(students) == {(t, s) for t in ("big", "big@1", "big@2") for s in (None, 1)}
    ups = {k: v.identity()["upstream"] for k, v in students.items()}
    tid = teachers[0].job_id
    assert ups[("big", None)] == [tid] and ups[("big@1", None)] == [f"{tid}@1"]
    assert "stop_epoch" not in students[("big", None)].identity()["method"]["params"]  # a later default
    assert len({j.job_id for j in students.values()}) == 6


def test_snapshot_epochs_are_checked(tmp_path):
    bad = SNAP_SUITE.replace("stop_epochs: [1, 2]", "stop_epochs: [1, 4]")
    with pytest.raises(SpecError, match=r"teachers\[0\]\.stop_epochs\[1\]: must be in 1\.\.3"):
        load_suite(str(write_suite(tmp_path, bad)))
    with pytest.raises(SpecError, match="not a teacher"):
        load_suite(str(write_suite(tmp_path, SNAP_SUITE + "pairs: [[big@5, small]]\n")))


def test_a_student_of_a_snapshot_learns_from_that_epochs_weights(tmp_path):
    torch.set_num_threads(1)
    plan = expand(load_suite(str(write_suite(tmp_path, SNAP_SUITE))))
    store = Store(str(tmp_path / "store"))
    teacher = next(e.job for e in plan.entries if e.job.kind == "teacher")
    run_job(teacher, store)
    snaps = {e: checkpoint.load(store, Store.artifact(teacher.job_id, snapshot_file(e)))["model"] for e in (1, 2)}
    assert checkpoint.load(store, Store.artifact(teacher.job_id, snapshot_file(3))) is None
    assert not torch.equal(snaps[1]["head.weight"], snaps[2]["head.weight"])
    student = next(e.job for e in plan.entries
                   if e.teacher == "big@1" and e.job.method.params.get("stop_epoch") is None)
    final = run_job(student, store)
    # The teacher accuracy the engine reports is that of the epoch-1 snapshot, recomputed here.
    from kdbench.engine.data import dataset_on

    data = dataset_on(student.dataset, torch.device("cpu"))
    model = create_model("mlp", teacher.model.params, data.input_shape, data.num_classes)
    model.load_state_dict(snaps[1])
    assert final["teacher_test_acc"] == pytest.approx(evaluate(Classification(), model, data.test)[1]["acc"])
    full = checkpoint.load(store, Store.artifact(teacher.job_id, MODEL_FILE))["model"]
    model.load_state_dict(full)
    assert not torch.equal(full["head.weight"], snaps[1]["head.weight"])


def test_eskd_stops_the_distillation_term_after_its_epoch(tmp_path):
    torch.set_num_threads(1)
    plan = expand(load_suite(str(write_suite(tmp_path, SNAP_SUITE))))
    store = Store(str(tmp_path / "store"))
    for e in plan.entries:
        if e.job.kind == "teacher" or (e.teacher == "big" and e.job.method.name == "kd"):
            run_job(e.job, store)
    eskd = next(e.job for e in plan.entries if e.teacher == "big" and e.job.method.params.get("stop_epoch") == 1)
    history = json.loads(store.read_bytes(Store.artifact(eskd.job_id, HISTORY)))
    assert history[0]["train_kd"] > 0 and [h["train_kd"] for h in history[1:]] == [0.0, 0.0]
    assert history[1]["train_loss"] == pytest.approx(history[1]["train_ce"])


def test_eskd_loss_is_plain_cross_entropy_after_the_stop(tmp_path):
    from kdbench.methods.base import MethodContext

    torch.manual_seed(0)
    ctx = MethodContext(num_classes=5, num_train=8)
    method = create_method("kd", KDParams(stop_epoch=2).model_dump(), ctx)
    s, t, y = torch.randn(8, 5), torch.randn(1, 8, 5), torch.randint(5, (8,))
    batch, out, tout = Batch(torch.zeros(8, 1), y, torch.arange(8)), ModelOutput(s, {}), TeacherOutput(t)
    before = method(batch, out, tout, TrainState(1, 3))
    after = method(batch, out, tout, TrainState(2, 3))
    ce = torch.nn.functional.cross_entropy(s, y)
    assert before["kd"] > 0 and torch.allclose(before["ce"], 0.1 * ce)
    assert after["kd"] == 0 and torch.allclose(after["ce"], ce)



# --- the offline twins, end to end through Ray Tune (slow) -----------------------------------------------

SUITES = ROOT / "benchmarks" / "suites"


def _from_store(store: Store, suite: str):
    """(chain, canonical method params) -> {seed: test_acc}, straight from the result rows of the suite's plan."""
    import numpy as np  # noqa: F401  (used by callers through the returned dicts)

    from kdbench.results.store import read_plan, read_results

    plan = read_plan(store, suite)
    res = {r["job_id"]: r for r in read_results(store, plan["job_id"].to_pylist()).to_pylist()}
    cells: dict[tuple, dict[int, float]] = {}
    for p in plan.to_pylist():
        r = res[p["job_id"]]
        if r["status"] == "ok" and p["kind"] in ("student", "baseline"):
            key = (tuple(p["chain"]), json.dumps(json.loads(p["method_params"]), sort_keys=True, separators=(",", ":")))
            cells.setdefault(key, {})[p["seed"]] = r["test_acc"]
    return cells


def _assert_cell(row: dict, accs: dict[int, float], alone: dict[int, float] | None) -> None:
    import numpy as np
    from scipy import stats as sps

    a = np.array([accs[s] for s in sorted(accs)])
    assert row["n"] == len(a) and row["mean"] == pytest.approx(a.mean()) and row["std"] == pytest.approx(a.std(ddof=1))
    low, high = sps.t.interval(0.95, len(a) - 1, loc=a.mean(), scale=sps.sem(a))
    low, high = max(low, 0.0), min(high, 1.0)  # an accuracy's interval is clipped to [0, 1]
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    if alone:
        d = a - np.array([alone[s] for s in sorted(accs)])
        assert row["gain"] == pytest.approx(d.mean())
        ci = sps.ttest_rel(a, [alone[s] for s in sorted(accs)]).confidence_interval(0.95)
        assert (row["gain_ci_low"], row["gain_ci_high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))


@pytest.mark.slow
def test_twins_run_and_their_views_show_the_stores_numbers(tmp_path, ray_local):
    from kdbench.orchestrate import RunOptions, run_suite
    from kdbench.results import views

    store_uri = str(tmp_path / "store")
    for name in ("takd_digits", "teacher_size_digits", "eskd_digits"):
        counts = run_suite(str(SUITES / f"{name}.yaml"), RunOptions(store=store_uri, track=False))
        assert counts.failed == 0 and counts.interrupted == 0, counts.summary()
    store = Store(store_uri)

    cells = _from_store(store, "takd_digits")
    alone = cells[(("student",), "{}")]
    takd = views.takd(store, "takd_digits").to_pylist()
    chains = {r["via"]: r for r in takd if r["student"] == "student"}
    assert set(chains) == {"(alone)", "", "ta-64", "ta-32", "ta-64 → ta-32"}
    kd = next(k for c, k in cells if c == ("teacher", "student"))
    for via, row in chains.items():
        chain = ("student",) if via == "(alone)" else ("teacher", *filter(None, via.split(" → ")), "student")
        _assert_cell(row, cells[(chain, "{}" if via == "(alone)" else kd)], None if via == "(alone)" else alone)
    assert chains["ta-32"]["ta_params"] < chains["ta-64"]["ta_params"]

    cells = _from_store(store, "teacher_size_digits")
    rows = views.teacher_size(store, "teacher_size_digits").to_pylist()
    assert [r["teacher"] for r in rows] == ["mlp-64", "mlp-256", "mlp-2x512"]  # by size
    for r in rows:
        _assert_cell(r, cells[((r["teacher"], "student"), r["method_params"])], cells[(("student",), "{}")])

    cells = _from_store(store, "eskd_digits")
    rows = views.eskd(store, "eskd_digits").to_pylist()
    assert {(r["teacher_epoch"], r["teacher_source"], r["kd_stop_epoch"]) for r in rows} == {
        (e, s, k) for e, s in ((2, "snapshot"), (5, "snapshot"), (15, "full")) for k in (None, 5)}
    for r in rows:
        source = "teacher" if r["teacher_source"] == "full" else f"teacher@{r['teacher_epoch']}"
        _assert_cell(r, cells[((source, "student"), r["method_params"])], cells[(("student",), "{}")])
    # the students of the epoch-2 snapshot saw a weaker teacher than those of the full run
    acc = {(r["teacher_epoch"], r["kd_stop_epoch"]): r["teacher_score"] for r in rows}
    assert acc[(2, None)] < acc[(15, None)]
    files = store.list_files("leaderboards/eskd_digits/views", ".png")
    assert any(f.endswith("view-eskd.png") for f in files)


def test_a_recipe_can_train_without_the_datasets_augmentation(tmp_path):
    suite = SNAP_SUITE.replace("{name: small, arch: mlp, widths: [4]}",
                               "{name: small, arch: mlp, widths: [4], recipe: {augment: false}}")
    ok = load_suite(str(write_suite(tmp_path, suite)))
    assert ok.students[0].recipe.augment is False and ok.teachers[0].recipe.augment is True


def test_the_study_suites_validate(tmp_path, monkeypatch):
    """The paper-scale suites load and expand (data folders faked: validation only checks file names)."""
    for folder, names in {"cifar-100-python": ["train", "test", "meta"],
                          "cifar-10-batches-py": [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"],
                          "MNIST/raw": ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]}.items():
        (tmp_path / folder).mkdir(parents=True)
        for name in names:
            (tmp_path / folder / name).write_bytes(b"")
    monkeypatch.setenv("KDBENCH_DATA_ROOT", str(tmp_path))
    sizes = {}
    for name in ("takd_cifar10", "takd_cifar100", "teacher_size_cifar100", "eskd_cifar100", "ensembles_cifar100",
                 "hinton_mnist", "takd_digits", "teacher_size_digits", "eskd_digits", "hinton_digits",
                 "variational_mnist", "variational_cifar10", "variational_digits"):
        plan = expand(load_suite(str(ROOT / "benchmarks" / "suites" / f"{name}.yaml")))
        sizes[name] = plan.counts()
    assert sizes["eskd_cifar100"]["teacher"] == 1  # six teacher epochs, one training run
    assert sizes["takd_cifar100"]["student"] == 5 * (1 + 4 * 2 + 2)  # direct, 4 one-TA chains, 2 new links
