"""AB, FT, FSP and NST: their losses against NumPy re-implementations of the formulas (connector, paraphraser
and translator weights read from the instances), the benchmark defaults, where gradients go, and training
through the real engine — including the initialisation stage of AB, FT and FSP and a resume inside it."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch

import kdbench.engine.run as engine_run
from kdbench import checkpoint
from kdbench.engine import run_job
from kdbench.jobs import Component, Job, Upstream
from kdbench.methods import METHODS, Batch, MethodContext, TeacherOutput, TrainState, create_method
from kdbench.store import Store
from kdbench.suite.schema import Recipe
from kdbench.zoo.models import ModelOutput

B, K = 3, 4  # batch, classes
INIT, MAIN = TrainState(0, 1, "init"), TrainState(0, 2, "main")


# ---------------------------------------------------------------- NumPy re-implementations of the pieces

def np_pool(x, size):
    """Adaptive average pooling for whole-number ratios: the mean of each block, (B, C, h, w)."""
    b, c, h, w = x.shape
    return x.reshape(b, c, size[0], h // size[0], size[1], w // size[1]).mean(axis=(3, 5))


def np_same_size(s, t):
    size = (min(s.shape[2], t.shape[2]), min(s.shape[3], t.shape[3]))
    return np_pool(s, size), np_pool(t, size)


def np_conv3(x, w, b):
    """3×3 convolution, stride 1, zero padding 1; w (O, C, 3, 3)."""
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    h, wd = x.shape[2:]
    out = sum(np.einsum("bchw,oc->bohw", xp[:, :, dy:dy + h, dx:dx + wd], w[:, :, dy, dx])
              for dy in range(3) for dx in range(3))
    return out + b[None, :, None, None]


def np_deconv3(x, w, b):
    """3×3 transposed convolution, stride 1, padding 1; w (C_in, C_out, 3, 3): a convolution with the kernel
    flipped and its channel axes swapped."""
    return np_conv3(x, w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3), b)


def np_bn_train(x, gamma, beta, eps=1e-5):
    mean, var = x.mean(axis=(0, 2, 3), keepdims=True), x.var(axis=(0, 2, 3), keepdims=True)  # biased var
    return (x - mean) / np.sqrt(var + eps) * gamma[None, :, None, None] + beta[None, :, None, None]


def leaky(x):
    return np.where(x > 0, x, 0.1 * x)


def l2_rows(v):
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def np_ce(logits, y):
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


def n(t):
    return t.detach().numpy()


# ---------------------------------------------------------------- fixtures: fake taps and method instances

def taps(seed, shapes, grad=False):
    """Taps by name (stem, stage{i}, preact{i}, embedding) with random float64 values, batch B."""
    g = torch.Generator().manual_seed(seed)
    out = {name: torch.randn(B, *shape, generator=g, dtype=torch.float64) for name, shape in shapes.items()}
    return {k: v.requires_grad_(grad) for k, v in out.items()}


def shapes_of(stem, stage_shapes):
    s = {"stem": stem}
    s |= {f"stage{i}": sh for i, sh in enumerate(stage_shapes, 1)}
    s |= {f"preact{i}": sh for i, sh in enumerate(stage_shapes, 1)}
    return s | {"embedding": (stage_shapes[-1][0],)}


def build(name, s_shapes, t_shapes, **params):
    ctx = MethodContext(num_classes=K, num_train=10, student_features=s_shapes, teacher_features=t_shapes)
    torch.manual_seed(0)  # the modules' initial weights, whatever ran before
    method = create_method(name, params, ctx).double()
    with torch.no_grad():  # BN affine parameters away from (1, 0), so the test sees them used
        for m in method.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return method


def call(method, s_feats, t_feats, state, seed=0):
    g = torch.Generator().manual_seed(seed + 100)
    logits = torch.randn(B, K, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 3, 1])
    teacher = TeacherOutput(torch.randn(1, B, K, generator=g, dtype=torch.float64), "arithmetic", t_feats)
    terms = method(Batch(torch.zeros(B, 1), y, torch.arange(B)), ModelOutput(logits, s_feats), teacher, state)
    return terms, n(logits), n(y)


# ---------------------------------------------------------------- AB

def np_ab(s_list, t_list, margin=1.0):
    total, nst = 0.0, len(s_list)
    for i, (s, t) in enumerate(zip(s_list, t_list, strict=True)):
        on = t > 0
        # the reference's form: (s − μ)² where s ≤ μ and the teacher fires, (s + μ)² where s > −μ and it does not
        per = (s - margin) ** 2 * ((s <= margin) & on) + (s + margin) ** 2 * ((s > -margin) & ~on)
        total += 2.0 ** (i - nst + 1) * per.sum() / s.shape[0] / 1000 * 3
    return total


def np_connector(c, x):
    conv, bn = c[0], c[1]
    y = np.einsum("bchw,oc->bohw", x, n(conv.weight)[:, :, 0, 0])
    return np_bn_train(y, n(bn.weight), n(bn.bias), bn.eps)


@pytest.mark.parametrize("variant, t_stage1", [("benchmark", (3, 4, 4)), ("paper", (3, 2, 2))])
def test_ab_init_loss_matches_numpy(variant, t_stage1):
    s_sh, t_sh = shapes_of((2, 4, 4), [(2, 4, 4), (4, 2, 2)]), shapes_of((2, 4, 4), [t_stage1, (4, 2, 2)])
    method = build("ab", s_sh, t_sh, variant=variant)
    s, t = taps(1, s_sh), taps(2, t_sh)
    terms, _, _ = call(method, s, t, INIT)
    assert set(terms) == {"ab"}  # the init stage: no CE, no KD
    conn = method.connectors
    s_maps = [np_connector(conn[0], n(s["preact1"])), n(s["preact2"])]
    if variant == "paper":  # always a connector, even where the shapes already match
        s_maps[1] = np_connector(conn[1], n(s["preact2"]))
    else:
        assert isinstance(conn[1], torch.nn.Identity)
    pairs = [np_same_size(a, n(b)) for a, b in zip(s_maps, [t["preact1"], t["preact2"]], strict=True)]
    expected = np_ab([a for a, _ in pairs], [b for _, b in pairs])
    assert expected > 0 and terms["ab"].item() == pytest.approx(expected, rel=1e-10)


def test_ab_adds_nothing_of_its_own_in_the_main_stage():
    sh = shapes_of((2, 4, 4), [(2, 4, 4)])
    terms, logits, y = call(build("ab", sh, sh), taps(1, sh), taps(2, sh), MAIN)
    assert set(terms) == {"ce"} and terms["ce"].item() == pytest.approx(np_ce(logits, y), rel=1e-10)


def test_ab_defaults_are_the_benchmarks():
    p = METHODS.get("ab").Params()
    assert (p.weight, p.margin, p.init_epochs, p.variant, p.ce_weight, p.kd_weight) == (1.0, 1.0, 30, "benchmark",
                                                                                          1.0, 0.0)
    sh = shapes_of((2, 4, 4), [(2, 4, 4), (2, 4, 4)])
    assert build("ab", sh, sh).init_epochs == 30
    # the benchmark's connector is the identity only where channels *and* size already match
    conn = build("ab", sh, shapes_of((2, 4, 4), [(2, 4, 4), (2, 2, 2)])).connectors
    assert isinstance(conn[0], torch.nn.Identity) and isinstance(conn[1][0], torch.nn.Conv2d)


def test_ab_gradients_reach_the_student_and_connectors_not_the_teacher():
    s_sh, t_sh = shapes_of((2, 4, 4), [(2, 4, 4), (4, 2, 2)]), shapes_of((2, 4, 4), [(3, 4, 4), (5, 2, 2)])
    method, s, t = build("ab", s_sh, t_sh), taps(1, s_sh, grad=True), taps(2, t_sh, grad=True)
    sum(call(method, s, t, INIT)[0].values()).backward()
    assert all(s[k].grad.abs().sum() > 0 for k in ("preact1", "preact2"))
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in method.parameters())
    assert all(v.grad is None for v in t.values())


# ---------------------------------------------------------------- FT

def np_translator(seq, x):
    for conv, bn in ((seq[0], seq[1]), (seq[3], seq[4]), (seq[6], seq[7])):
        x = leaky(np_bn_train(np_conv3(x, n(conv.weight), n(conv.bias)), n(bn.weight), n(bn.bias), bn.eps))
    return x


def np_encode(par, x):
    for conv in (par.encoder[0], par.encoder[2], par.encoder[4]):
        x = leaky(np_conv3(x, n(conv.weight), n(conv.bias)))
    return x


def np_decode(par, x):
    for conv in (par.decoder[0], par.decoder[2], par.decoder[4]):
        x = leaky(np_deconv3(x, n(conv.weight), n(conv.bias)))
    return x


def np_factor_loss(fs, ft, variant):
    fs, ft = np_same_size(fs, ft)
    if variant == "benchmark":  # attention-style map of the factor: channel mean of squares, L2-normalised
        phi = lambda f: l2_rows((f ** 2).mean(axis=1).reshape(f.shape[0], -1))  # noqa: E731
    else:  # the paper: the whole factor, flattened and L2-normalised
        phi = lambda f: l2_rows(f.reshape(f.shape[0], -1))  # noqa: E731
    return float(np.abs(phi(fs) - phi(ft)).mean())


FT_S = shapes_of((2, 4, 4), [(2, 4, 4), (3, 4, 4)])
FT_T = shapes_of((4, 4, 4), [(4, 4, 4), (4, 2, 2)])  # the teacher's last map is smaller: pooled


def test_ft_init_stage_is_the_paraphrasers_reconstruction_mse():
    method = build("ft", FT_S, FT_T)
    s, t = taps(1, FT_S), taps(2, FT_T)
    terms, _, _ = call(method, s, t, INIT)
    x = n(t["stage2"])
    expected = float(((np_decode(method.paraphraser, np_encode(method.paraphraser, x)) - x) ** 2).mean())
    assert set(terms) == {"rec"} and terms["rec"].item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("variant", ["benchmark", "paper"])
def test_ft_main_stage_factor_loss_matches_numpy(variant):
    method = build("ft", FT_S, FT_T, variant=variant, kd_weight=0.5)
    s, t = taps(1, FT_S), taps(2, FT_T)
    terms, logits, y = call(method, s, t, MAIN)
    assert set(terms) == {"ce", "kd", "ft"} and terms["ce"].item() == pytest.approx(np_ce(logits, y), rel=1e-10)
    factor_s = np_translator(method.translator, n(s["stage2"]))  # (B, 2, 4, 4)
    factor_t = np_encode(method.paraphraser, n(t["stage2"]))  # (B, 2, 2, 2)
    assert factor_s.shape[1] == factor_t.shape[1] == 2  # int(0.5 · 4) factor channels
    expected = 200.0 * np_factor_loss(factor_s, factor_t, variant)
    assert expected > 0 and terms["ft"].item() == pytest.approx(expected, rel=1e-10)


def test_ft_defaults_are_the_benchmarks():
    p = METHODS.get("ft").Params()
    assert (p.weight, p.rate, p.init_epochs, p.variant, p.ce_weight, p.kd_weight) == (200.0, 0.5, 30, "benchmark",
                                                                                       1.0, 0.0)
    assert build("ft", FT_S, FT_T).init_epochs == 30


def test_ft_gradients_per_stage():
    method = build("ft", FT_S, FT_T)
    s, t = taps(1, FT_S, grad=True), taps(2, FT_T, grad=True)
    call(method, s, t, INIT)[0]["rec"].backward()  # init: the paraphraser alone learns
    assert all(p.grad is not None for p in method.paraphraser.parameters())
    assert all(p.grad is None for p in method.translator.parameters()) and s["stage2"].grad is None
    method.zero_grad(set_to_none=True)
    sum(call(method, s, t, MAIN)[0].values()).backward()  # main: student + translator, the paraphraser frozen
    assert s["stage2"].grad.abs().sum() > 0
    assert all(p.grad is not None for p in method.translator.parameters())
    # (a conv bias just before BN gets a zero gradient in exact arithmetic: check the kernels and BN affines)
    assert all(p.grad.abs().sum() > 0 for name, p in method.translator.named_parameters() if "bias" not in name
               or isinstance(method.translator[int(name.split(".")[0])], torch.nn.BatchNorm2d))
    assert all(p.grad is None for p in method.paraphraser.parameters())
    assert all(v.grad is None for v in t.values())


# ---------------------------------------------------------------- FSP

def np_fsp(a, b):
    size = (min(a.shape[2], b.shape[2]), min(a.shape[3], b.shape[3]))
    a, b = np_pool(a, size), np_pool(b, size)
    return np.einsum("bihw,bjhw->bij", a, b) / (size[0] * size[1])


FSP_S = shapes_of((2, 4, 4), [(2, 4, 4), (3, 2, 2)])
FSP_T = shapes_of((2, 8, 8), [(2, 8, 8), (3, 4, 4)])  # same channels, other spatial sizes


def test_fsp_init_loss_matches_numpy():
    method = build("fsp", FSP_S, FSP_T)
    s, t = taps(1, FSP_S), taps(2, FSP_T)
    terms, _, _ = call(method, s, t, INIT)
    order = ["stem", "stage1", "stage2"]
    expected = sum(((np_fsp(n(s[a]), n(s[b])) - np_fsp(n(t[a]), n(t[b]))) ** 2).mean()
                   for a, b in zip(order, order[1:], strict=False))
    assert set(terms) == {"fsp"} and terms["fsp"].item() == pytest.approx(expected, rel=1e-10)
    main, logits, y = call(method, s, t, MAIN)
    assert set(main) == {"ce"} and main["ce"].item() == pytest.approx(np_ce(logits, y), rel=1e-10)


def test_fsp_defaults_and_channel_check():
    p = METHODS.get("fsp").Params()
    assert (p.weight, p.init_epochs, p.ce_weight, p.kd_weight) == (1.0, 30, 1.0, 0.0)
    with pytest.raises(ValueError, match="equal channels"):
        build("fsp", FSP_S, shapes_of((2, 4, 4), [(4, 4, 4), (3, 2, 2)]))


def test_fsp_gradients_reach_the_student_not_the_teacher():
    method = build("fsp", FSP_S, FSP_T)
    s, t = taps(1, FSP_S, grad=True), taps(2, FSP_T, grad=True)
    call(method, s, t, INIT)[0]["fsp"].backward()
    assert all(s[k].grad.abs().sum() > 0 for k in ("stem", "stage1", "stage2"))
    assert all(v.grad is None for v in t.values()) and list(method.parameters()) == []


# ---------------------------------------------------------------- NST

def np_mmd(fs, ft):
    fs, ft = np_same_size(fs, ft)
    s, t = l2_rows_3d(fs), l2_rows_3d(ft)
    k = lambda a, b: np.einsum("bid,bjd->bij", a, b) ** 2  # noqa: E731  polynomial kernel, d = 2, c = 0
    return k(t, t).mean() + k(s, s).mean() - 2 * k(s, t).mean()


def l2_rows_3d(f):
    v = f.reshape(f.shape[0], f.shape[1], -1)  # (B, C, H·W)
    return v / np.linalg.norm(v, axis=2, keepdims=True)


NST_S = shapes_of((2, 4, 4), [(2, 4, 4), (3, 4, 4)])
NST_T = shapes_of((3, 4, 4), [(3, 4, 4), (4, 2, 2)])  # stage 2: the student's map is larger, pooled


def test_nst_loss_matches_numpy_including_the_teacher_term():
    method = build("nst", NST_S, NST_T)
    s, t = taps(1, NST_S), taps(2, NST_T)
    terms, logits, y = call(method, s, t, MAIN)
    expected = 50.0 * sum(np_mmd(n(s[k]), n(t[k])) for k in ("stage1", "stage2"))
    assert set(terms) == {"ce", "nst"} and terms["nst"].item() == pytest.approx(expected, rel=1e-10)
    assert terms["ce"].item() == pytest.approx(np_ce(logits, y), rel=1e-10)
    same, _, _ = call(build("nst", NST_T, NST_T), t, t, MAIN)  # with the teacher term, MMD(t, t) = 0
    assert abs(same["nst"].item()) < 1e-12


def test_nst_defaults_are_the_benchmarks():
    p = METHODS.get("nst").Params()
    assert (p.weight, p.ce_weight, p.kd_weight) == (50.0, 1.0, 0.0)


def test_nst_gradients_reach_the_student_not_the_teacher():
    method = build("nst", NST_S, NST_T)
    s, t = taps(1, NST_S, grad=True), taps(2, NST_T, grad=True)
    call(method, s, t, MAIN)[0]["nst"].backward()
    assert all(s[k].grad.abs().sum() > 0 for k in ("stage1", "stage2"))
    assert all(v.grad is None for v in t.values()) and list(method.parameters()) == []


# ---------------------------------------------------------------- all four

@pytest.mark.parametrize("name", ["ab", "ft", "fsp", "nst"])
def test_no_teacher_features_is_a_clear_error(name):
    with pytest.raises(ValueError, match="teacher"):
        build(name, FSP_S, {})


# ---------------------------------------------------------------- through the real engine

DS = Component("digits", {"train_fraction": 1.0})
RECIPE = Recipe(epochs=2, batch_size=64).model_dump(mode="json")
T_MODEL = Component("cnn", {"channels": [8, 16], "dropout": 0.0})
TEACHER = Job("teacher", DS, T_MODEL, RECIPE, Component("none", {}), 0)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The models are tiny: intra-op threads only add synchronisation (seconds on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def teacher_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("teacher")
    run_job(TEACHER, Store(root))
    return root


@pytest.fixture
def store(teacher_store, tmp_path):
    """A fresh store holding the trained teacher (copied, not retrained)."""
    return lambda name="store": Store(shutil.copytree(teacher_store, tmp_path / name))


def student_job(name, channels=(4, 8), **overrides):
    params = METHODS.get(name).Params(**overrides).model_dump(mode="json")
    model = Component("cnn", {"channels": list(channels), "dropout": 0.0})
    return Job("student", DS, model, RECIPE, Component(name, params), 0, None, (Upstream(TEACHER.job_id, T_MODEL),))


ENGINE_CASES = {"ab": ({}, 1), "ft": ({}, 1), "fsp": ({"channels": (8, 16)}, 1), "nst": ({}, 0)}


@pytest.mark.parametrize("name", list(ENGINE_CASES))
def test_trains_through_the_engine(name, store):
    kw, init = ENGINE_CASES[name]
    job = student_job(name, **kw, **({"init_epochs": 1} if init else {}))
    s = store()
    final = run_job(job, s)
    history = json.loads(s.read_bytes(Store.artifact(job.job_id, "history.json")))
    assert math.isfinite(final["test_acc"]) and len(history) == init + 2
    assert final["epochs_trained"] == 2


@pytest.mark.parametrize("name", ["ab", "ft", "fsp"])
def test_the_init_stage_trains_no_classifier(name, store, monkeypatch):
    seen = {}

    def capture(fn, key):
        def wrapped(*a, **k):
            seen[key] = fn(*a, **k)
            seen[key + "0"] = {k: v.clone() for k, v in seen[key].state_dict().items()}
            return seen[key]
        return wrapped

    monkeypatch.setattr(engine_run, "create_model", capture(engine_run.create_model, "model"))
    monkeypatch.setattr(engine_run, "create_method", capture(engine_run.create_method, "method"))
    after_init = {}

    def report(metrics):
        if metrics["epoch"] == 1:  # the init stage has just ended
            after_init.update(metrics=metrics, model={k: v.clone() for k, v in seen["model"].state_dict().items()},
                              method={k: v.clone() for k, v in seen["method"].state_dict().items()})

    kw = ENGINE_CASES[name][0]
    run_job(student_job(name, **kw, init_epochs=1), store(), report=report)
    before, mid, end = seen["model0"], after_init["model"], seen["model"].state_dict()
    assert not any(k.startswith("train_ce") for k in after_init["metrics"])
    for k in ("head.weight", "head.bias"):  # no CE in the init stage: the classifier is untouched ...
        assert torch.equal(before[k], mid[k])
        assert not torch.equal(mid[k], end[k])  # ... and trained in the main stage
    convs = [k for k in before if k.endswith("0.weight") and before[k].dim() == 4]  # the student's conv kernels
    changed = any(not torch.equal(before[k], mid[k]) for k in convs)
    assert changed == (name != "ft")  # AB, FSP train the student's features; FT only its paraphraser
    if name == "ft":
        m0, m1 = seen["method0"], after_init["method"]
        assert any(not torch.equal(m0[k], m1[k]) for k in m0 if k.startswith("paraphraser"))
        assert all(torch.equal(m0[k], m1[k]) for k in m0 if k.startswith("translator"))


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("name", ["ab", "ft", "fsp"])
def test_a_job_interrupted_in_the_init_stage_resumes_exactly(name, store):
    job = student_job(name, **ENGINE_CASES[name][0], init_epochs=2)
    whole, cut = store("whole"), store("cut")
    expected = run_job(job, whole)

    def die_after_first(metrics):
        if metrics["epoch"] == 1:  # one of two init epochs done
            raise Interrupt

    with pytest.raises(Interrupt):
        run_job(job, cut, report=die_after_first)
    seen = []
    resumed = run_job(job, cut, report=seen.append)
    assert [m["epoch"] for m in seen] == [2, 3, 4] and resumed["restarts"] == [1]
    a = checkpoint.load(whole, Store.artifact(job.job_id, "model.pt"))["model"]
    b = checkpoint.load(cut, Store.artifact(job.job_id, "model.pt"))["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["test_acc"] == expected["test_acc"]
