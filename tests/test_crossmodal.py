"""CRD's cross-modal transfer: paired modalities, the model's input view, negatives without labels, the linear
probe task, the CIFAR L*a*b* files, and the twin suite end to end through Ray Tune."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from kdbench.methods import MethodContext, create_method
from kdbench.methods.base import Batch
from kdbench.methods.crd import sample_instances, sample_negatives
from kdbench.methods.mixing import MixParams, label_and_kd
from kdbench.tasks import task_of
from kdbench.tasks.probe import fit_probe
from kdbench.zoo.datasets import load_dataset
from kdbench.zoo.datasets.lab import srgb_to_lab
from kdbench.zoo.models import create_model
from kdbench.zoo.models.features import feature_shapes

from .conftest import ROOT

SUITES = ROOT / "benchmarks" / "suites"


def test_paired_scenes_pair_colour_and_depth_of_one_scene():
    d = load_dataset("paired_scenes", {"n_train": 64, "n_probe": 16, "n_val": 16, "n_test": 32, "noise": 0.0,
                                       "depth_noise": 0.0})
    assert d.input_shape == (4, 16, 16) and d.probe is not None and len(d.probe) == 16
    assert task_of("paired_scenes").name == "linear_probe"
    # Noise-free, colour / shading (1.3 − depth) is flat: the object's colour where depth says the object is
    # (nearer than 0.51), the background's elsewhere — the two modalities of a sample show the same scene.
    x = d.train.x
    depth = x[:, 3] * 0.25 + 0.5
    flat = (x[:, :3] * 0.25 + 0.5) / (1.3 - depth).unsqueeze(1)  # (N, 3, H, W)
    near = depth < 0.51  # the object's depth is ≤ 0.5, the background's ≥ 0.575 (tilt included)
    for i in range(len(x)):
        obj, bg = flat[i][:, near[i]], flat[i][:, ~near[i]]
        assert obj.shape[1] > 0 and bg.shape[1] > 0
        assert (obj - obj[:, :1]).abs().max() < 1e-4 and (bg - bg[:, :1]).abs().max() < 1e-4
        assert (obj[:, 0] - bg[:, 0]).abs().max() > 0.25  # one dark, one light: the shape is visible in colour
    shuffled = flat[1][:, near[0]]  # another sample's colour is not flat on this sample's object
    assert (shuffled - shuffled[:, :1]).abs().max() > 1e-2
    assert load_dataset("paired_scenes", {"n_train": 64, "n_probe": 16, "n_val": 16, "n_test": 32}).train.x.equal(
        load_dataset("paired_scenes", {"n_train": 64, "n_probe": 16, "n_val": 16, "n_test": 32}).train.x)


def test_input_channels_make_a_model_see_one_modality():
    torch.manual_seed(0)
    model = create_model("cnn", {"channels": [4, 8], "input_channels": [3]}, (4, 8, 8), 3)
    assert model.stem[0][0].in_channels == 1  # built for the view's shape
    assert "input_channels" not in str(model.state_dict().keys())  # the architecture's own keys
    x = torch.randn(2, 4, 8, 8)
    model.eval()
    other = x.clone()
    other[:, :3] = torch.randn(2, 3, 8, 8)  # another colour, the same depth
    assert torch.equal(model(x).logits, model(other).logits)
    assert feature_shapes(model, (4, 8, 8))["embedding"] == (8,)
    with pytest.raises(ValueError, match="do not fit"):
        create_model("cnn", {"input_channels": [4]}, (4, 8, 8), 3)


def test_instance_negatives_never_draw_the_anchor():
    torch.manual_seed(0)
    n, k = 7, 500
    index = torch.arange(n)
    neg = sample_instances(index, n, k)
    assert neg.shape == (n, k) and neg.min() >= 0 and neg.max() < n
    assert not (neg == index.unsqueeze(1)).any()
    for i in range(n):  # every other sample is drawn (uniformly: 500 draws over 6 values)
        counts = torch.bincount(neg[i], minlength=n)
        assert counts[i] == 0 and (counts[torch.arange(n) != i] > 50).all()


def test_class_negatives_never_draw_the_same_class():
    torch.manual_seed(0)
    labels = torch.tensor([0, 1, 1, 2, 0, 2, 2, 1, 0, 0])
    count = torch.bincount(labels)
    order, start = torch.argsort(labels, stable=True), torch.cumsum(count, 0) - count
    neg = sample_negatives(labels, order, start, count, 300)
    assert (labels[neg] != labels.unsqueeze(1)).all()
    assert not (neg == torch.arange(10).unsqueeze(1)).any()


def test_crd_instance_mode_reads_no_label_and_keeps_its_default():
    ctx = MethodContext(num_classes=3, num_train=20, student_features={"embedding": (8,)},
                        teacher_features={"embedding": (6,)}, train_labels=None)
    crd = create_method("crd", {"negatives": "instance", "ce_weight": 0, "nce_k": 50}, ctx)
    assert crd.k == 19  # capped at N − 1
    assert create_method("crd", {}, MethodContext(3, 20, {"embedding": (8,)}, {"embedding": (6,)},
                                                  torch.arange(20) % 3)).params.negatives == "class"
    batch = Batch(torch.zeros(4, 1), torch.full((4,), -1), torch.tensor([0, 5, 9, 19]))  # labels unknown: -1
    student = type("Out", (), {"features": {"embedding": torch.randn(4, 8)}, "logits": torch.randn(4, 3)})()
    teacher = type("Out", (), {"features": {"embedding": torch.randn(4, 6)}})()
    terms = crd(batch, student, teacher, None)
    assert set(terms) == {"crd"} and torch.isfinite(terms["crd"])  # no "ce": r = 0 reads no label


def test_mixing_reads_no_label_when_ce_weight_is_zero():
    batch = Batch(torch.zeros(2, 1), torch.tensor([0, 1]), torch.arange(2))
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    assert label_and_kd(MixParams(ce_weight=0.0), batch, logits, None) == {}
    ce = label_and_kd(MixParams(ce_weight=0.5), batch, logits, None)["ce"]
    expected = 0.5 * -(np.log(np.exp(2) / (np.exp(2) + 1)) + np.log(np.exp(1) / (np.exp(1) + 1))) / 2
    assert ce.item() == pytest.approx(expected, rel=1e-6)


def test_the_probe_separates_hand_made_features():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)
    centres = np.array([[5.0, 0.0], [0.0, 5.0], [-5.0, -5.0]])
    feats = centres[y] + rng.normal(0, 0.5, (60, 2))
    assert fit_probe(feats[::2], y[::2], feats[1::2], y[1::2]) == 1.0  # linearly separable: perfect
    noise = rng.normal(0, 1, (60, 2))  # features independent of the class: about chance
    assert fit_probe(noise[::2], y[::2], noise[1::2], y[1::2]) < 0.6
    assert fit_probe(feats, np.zeros(60, int), feats, y) == pytest.approx(1 / 3)  # one class: predicts it


def test_the_probe_task_scores_embeddings_on_its_fit_split():
    task = task_of("paired_scenes")
    data = load_dataset("paired_scenes", {"n_train": 32, "n_probe": 30, "n_val": 16, "n_test": 30})
    assert task.fit_split(data) is data.probe and task.metric().name == "probe_acc"
    out = type("Out", (), {"features": {"embedding": torch.randn(3, 5)}, "logits": torch.randn(3, 2)})()
    model = lambda x: out  # noqa: E731
    model.eval = lambda: None
    assert task.predict(model, torch.zeros(3, 1)).shape == (3, 5)  # embeddings, not logits
    y = torch.tensor([0, 1, 2] * 10)
    feats = torch.nn.functional.one_hot(y).float() * 4
    assert task.score(feats, y, (feats, y)) == {"probe_acc": 1.0}
    with pytest.raises(ValueError, match="fit"):
        task.score(feats, y)


def test_srgb_to_lab_matches_the_cie_reference_values():
    rgb = np.array([[1, 1, 1], [1, 0, 0], [0, 0, 0]], float).T.reshape(1, 3, 3, 1)
    lab = srgb_to_lab(rgb)[0, :, :, 0].T
    # CIE L*a*b* (D65) of sRGB white, red and black: (100, 0, 0), (53.24, 80.09, 67.20), (0, 0, 0)
    assert lab[0] == pytest.approx([100, 0, 0], abs=1e-3)
    assert lab[1] == pytest.approx([53.24, 80.09, 67.20], abs=0.01)
    assert lab[2] == pytest.approx([0, 0, 0], abs=1e-9)


def _write_cifar10(root, n_train_per_batch: int = 40, n_test: int = 30) -> None:
    """CIFAR-10's python version, in its real format (pickled dicts of uint8 rows and labels), tiny."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in [*((f"data_batch_{i}", n_train_per_batch) for i in range(1, 6)), ("test_batch", n_test)]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, n))}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"c"] * 10}))


def test_cifar_lab_reads_the_official_files_into_paired_channels(tmp_path):
    _write_cifar10(tmp_path)
    d = load_dataset("cifar10_lab", {"root": str(tmp_path), "val_size": 20, "probe_size": 30})
    assert (len(d.train), len(d.val), len(d.probe), len(d.test)) == (150, 20, 30, 30)
    assert d.input_shape == (3, 32, 32) and task_of("cifar10_lab").name == "linear_probe"
    # Channel 0 is L* (scaled): recompute the first test image's from its raw bytes.
    raw = pickle.loads((tmp_path / "cifar-10-batches-py" / "test_batch").read_bytes())[b"data"][0]
    lab = srgb_to_lab(raw.reshape(1, 3, 32, 32) / 255.0)[0]
    assert torch.allclose(d.test.x[0, 0], torch.tensor((lab[0] - 50) / 50, dtype=torch.float32), atol=1e-5)
    assert torch.allclose(d.test.x[0, 1:], torch.tensor(lab[1:] / 50, dtype=torch.float32), atol=1e-5)


def test_the_paper_scale_suite_validates_from_real_format_files(tmp_path, monkeypatch):
    from kdbench.suite.load import load_suite
    from kdbench.suite.plan import expand

    _write_cifar10(tmp_path)
    monkeypatch.setenv("KDBENCH_DATA_ROOT", str(tmp_path))
    plan = expand(load_suite(str(SUITES / "crd_crossmodal_cifar10.yaml")))
    assert plan.counts() == {"teacher": 1, "baseline": 6, "student": 15}  # none + untrained, 5 transfers, 3 seeds
    teacher = next(e.job for e in plan.entries if e.job.kind == "teacher")
    assert teacher.model.params["input_channels"] == [0]
    students = [e.job for e in plan.entries if e.job.kind != "teacher"]
    assert all(j.model.params["input_channels"] == [1, 2] for j in students)
    crd = next(j for j in students if j.method.name == "crd")
    assert crd.method.params["negatives"] == "instance" and crd.method.params["ce_weight"] == 0
    assert not any(j.kind == "teacher_outputs" for j in (e.job for e in plan.entries))


@pytest.mark.slow
def test_the_twin_suite_runs_through_ray_and_crd_beats_random_features(tmp_path, ray_local):
    from kdbench.orchestrate import RunOptions, run_suite
    from kdbench.results import open_results

    counts = run_suite(str(SUITES / "crd_crossmodal_twin.yaml"), RunOptions(store=str(tmp_path / "s"), track=False))
    assert counts.failed == 0 and counts.run == counts.total == 11
    rows = open_results(tmp_path / "s").to_arrow().to_pylist()
    probe = {}
    for r in rows:
        probe.setdefault(r["method"] if r["kind"] != "teacher" else "teacher", []).append(
            dict(r["metrics"])["test_probe_acc"])
    assert set(probe) == {"teacher", "none", "untrained", "crd", "pkt", "rkd"}
    mean = {m: float(np.mean(v)) for m, v in probe.items()}
    print("probe accuracy:", mean)
    assert mean["teacher"] > 0.8  # the colour teacher's own representation
    assert mean["crd"] > mean["untrained"]  # CRD transferred something random features lack
    student = next(r for r in rows if r["method"] == "crd")
    assert dict(student["metrics"])["teacher_test_probe_acc"] == pytest.approx(probe["teacher"][0])
    from kdbench.results.views import VIEWS
    from kdbench.store import Store

    view = {(r["role"], r["method"]): r for r in VIEWS["crossmodal"](Store(tmp_path / "s"), "crd_crossmodal_twin")
            .to_pylist()}
    assert set(view) == {("teacher", "none"), ("supervised", "none"), ("floor", "untrained"), ("transfer", "crd"),
                         ("transfer", "pkt"), ("transfer", "rkd")}
    crd = view[("transfer", "crd")]
    assert crd["metric"] == "probe_acc" and crd["n"] == 2 and crd["mean"] == pytest.approx(mean["crd"])
    assert crd["ci_low"] <= crd["mean"] <= crd["ci_high"] and crd["vs_floor_n"] == 2
    assert crd["vs_floor"] == pytest.approx(mean["crd"] - mean["untrained"])


def test_baselines_with_an_input_view_train_fused_as_separately(tmp_path):
    from kdbench.engine import run_job
    from kdbench.engine.fused import train_fused
    from kdbench.store import Store
    from kdbench.suite import expand, load_suite

    from .conftest import write_suite

    text = """\
    name: fusedview
    dataset: {name: paired_scenes, n_train: 96, n_probe: 32, n_val: 32, n_test: 32}
    recipe: {epochs: 1, batch_size: 32, optimizer: {name: sgd, lr: 0.05}}
    students: [{name: depth, arch: cnn, channels: [4, 8], input_channels: [3]}]
    methods: [none, untrained]
    seeds: [0, 1]
    """
    plan = expand(load_suite(str(write_suite(tmp_path, text))))
    for method in ("none", "untrained"):
        jobs = [e.job for e in plan.entries if e.job.method.name == method]
        fused = train_fused(jobs, Store(tmp_path / f"fused-{method}"))
        for job, got in zip(jobs, fused, strict=True):
            want = run_job(job, Store(tmp_path / f"separate-{method}"))
            assert got.counters["fused"] == 2
            assert got.metrics["test_probe_acc"] == pytest.approx(want.metrics["test_probe_acc"], abs=1 / 32 + 1e-9)


def test_a_view_outside_the_input_is_a_spec_error(tmp_path):
    from kdbench.suite import load_suite
    from kdbench.suite.errors import SpecError

    from .conftest import write_suite

    text = """\
    name: badview
    dataset: {name: paired_scenes}
    recipe: {epochs: 1}
    students: [{name: depth, arch: cnn, input_channels: [4]}]
    methods: [none]
    seeds: [0]
    """
    with pytest.raises(SpecError, match="input_channels"):
        load_suite(str(write_suite(tmp_path, text)))
