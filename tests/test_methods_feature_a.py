"""Feature methods, group A (fitnet, at, sp, cc, vid, rkd, pkt): each loss against a NumPy re-implementation of
its formula on fixed tensors, the benchmark defaults, where gradients go, and a few steps through the engine."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from kdbench.engine import run_job
from kdbench.jobs import Component, Job, Upstream
from kdbench.methods import METHODS, Batch, MethodContext, TeacherOutput, TrainState, create_method
from kdbench.store import Store
from kdbench.suite.schema import Recipe
from kdbench.zoo.models import ModelOutput

B, K = 6, 5  # batch, classes


def feats(seed: int, shapes: dict[str, tuple[int, ...]], grad: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(B, *s, generator=g, dtype=torch.float64).requires_grad_(grad) for k, s in shapes.items()}


def make(name: str, s_shapes, t_shapes, **params):
    ctx = MethodContext(K, 100, s_shapes, t_shapes)
    torch.manual_seed(0)
    return create_method(name, params, ctx).double()


def call(method, s_feats, t_feats, stage="main"):
    g = torch.Generator().manual_seed(99)
    logits = torch.randn(B, K, generator=g, dtype=torch.float64)
    y = torch.arange(B) % K
    teacher = TeacherOutput(torch.randn(1, B, K, generator=g, dtype=torch.float64), features=t_feats)
    return method(Batch(logits, y, torch.arange(B)), ModelOutput(logits, s_feats), teacher, TrainState(0, 1, stage))


def n(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


def val(t: torch.Tensor) -> float:
    return float(t.detach())


# ---------------------------------------------------------------- NumPy references, written from the formulas


def np_conv(x, w, bias=None):
    """Valid (no padding, stride 1) convolution: x (B, C, H, W), w (O, C, kh, kw) -> (B, O, H-kh+1, W-kw+1)."""
    o, _, kh, kw = w.shape
    hh, ww = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    out = np.zeros((x.shape[0], o, hh, ww))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("bchw,oc->bohw", x[:, :, i:i + hh, j:j + ww], w[:, :, i, j])
    return out if bias is None else out + bias[None, :, None, None]


def np_bn_train(x, gamma, beta, eps=1e-5):
    m, v = x.mean(axis=(0, 2, 3), keepdims=True), x.var(axis=(0, 2, 3), keepdims=True)  # biased variance
    return (x - m) / np.sqrt(v + eps) * gamma[None, :, None, None] + beta[None, :, None, None]


def np_pool_to(x, h, w):
    b, c, hh, ww = x.shape
    return x.reshape(b, c, h, hh // h, w, ww // w).mean(axis=(3, 5))


def np_unit_rows(x):
    return x / np.maximum(np.sqrt((x**2).sum(1, keepdims=True)), 1e-12)


def np_huber(a, b):
    d = np.abs(a - b)
    return np.where(d < 1, 0.5 * d**2, d - 0.5).mean()


# ---------------------------------------------------------------------------------------------------- fitnet


@pytest.mark.parametrize("s_hw, t_hw", [((4, 4), (4, 4)), ((5, 5), (4, 4)), ((5, 4), (3, 3))])
def test_fitnet_is_the_mse_of_the_regressed_hint(s_hw, t_hw):
    s_shapes, t_shapes = {"stage2": (3, *s_hw)}, {"stage2": (2, *t_hw)}
    m = make("fitnet", s_shapes, t_shapes)
    conv, bn = m.regressor[0], m.regressor[1]
    with torch.no_grad():  # a non-trivial BN affine
        bn.weight.copy_(torch.tensor([1.5, 0.7]))
        bn.bias.copy_(torch.tensor([0.2, -0.1]))
    assert conv.kernel_size == (1 + s_hw[0] - t_hw[0], 1 + s_hw[1] - t_hw[1])
    s, t = feats(1, s_shapes), feats(2, t_shapes)
    r = np.maximum(np_bn_train(np_conv(n(s["stage2"]), n(conv.weight), n(conv.bias)), n(bn.weight), n(bn.bias)), 0)
    expected = ((r - n(t["stage2"])) ** 2).mean()
    terms = call(m, s, t)
    assert set(terms) == {"ce", "hint"}
    assert val(terms["hint"]) == pytest.approx(100 * expected, rel=1e-10)


@pytest.mark.parametrize("s_hw, t_hw, kind", [(8, 4, torch.nn.Conv2d), (4, 8, torch.nn.ConvTranspose2d)])
def test_fitnet_regressor_halves_or_doubles_the_map(s_hw, t_hw, kind):
    m = make("fitnet", {"stage2": (3, s_hw, s_hw)}, {"stage2": (5, t_hw, t_hw)})
    assert type(m.regressor[0]) is kind and m.regressor[0].stride == (2, 2)
    out = m.regressor(torch.zeros(2, 3, s_hw, s_hw, dtype=torch.float64))
    assert out.shape == (2, 5, t_hw, t_hw)


def test_fitnet_init_stage_returns_the_unweighted_hint_only():
    shapes = {"stage2": (3, 4, 4)}
    m = make("fitnet", shapes, {"stage2": (2, 4, 4)}, hint_epochs=3)
    assert m.init_epochs == 3 and make("fitnet", shapes, {"stage2": (2, 4, 4)}).init_epochs == 0
    s, t = feats(1, shapes), feats(2, {"stage2": (2, 4, 4)})
    init, main = call(m, s, t, "init"), call(m, s, t, "main")
    assert set(init) == {"hint"} and val(main["hint"]) == pytest.approx(100 * val(init["hint"]))


def test_fitnet_rejects_a_teacher_hint_larger_than_the_students():
    with pytest.raises(ValueError, match="cannot regress"):
        make("fitnet", {"stage2": (3, 3, 3)}, {"stage2": (3, 5, 5)})


# -------------------------------------------------------------------------------------------------------- at


def np_at(f):
    return np_unit_rows((f**2).mean(1).reshape(len(f), -1))


def test_at_sums_the_mean_squared_attention_differences_over_stages():
    s_shapes = {"stage1": (3, 4, 4), "stage2": (4, 2, 2), "stage3": (2, 4, 4)}
    t_shapes = {"stage1": (5, 4, 4), "stage2": (6, 4, 4), "stage3": (3, 2, 2)}  # stage2/3: pooled to 2×2
    s, t = feats(1, s_shapes), feats(2, t_shapes)
    pairs = [(n(s["stage1"]), n(t["stage1"])), (n(s["stage2"]), np_pool_to(n(t["stage2"]), 2, 2)),
             (np_pool_to(n(s["stage3"]), 2, 2), n(t["stage3"]))]
    expected = sum(((np_at(a) - np_at(b)) ** 2).mean() for a, b in pairs)
    terms = call(make("at", s_shapes, t_shapes), s, t)
    assert val(terms["at"]) == pytest.approx(1000 * expected, rel=1e-10)


def test_at_and_vid_pair_stages_one_to_one():
    for name in ("at", "vid"):
        with pytest.raises(ValueError, match="one to one"):
            make(name, {"stage1": (2, 4, 4)}, {"stage1": (2, 4, 4), "stage2": (2, 2, 2)})


# -------------------------------------------------------------------------------------------------------- sp


def test_sp_compares_row_normalised_batch_similarities_of_the_last_stage():
    s_shapes = {"stage1": (2, 4, 4), "stage2": (3, 2, 2)}
    t_shapes = {"stage1": (2, 4, 4), "stage2": (5, 4, 4)}
    s, t = feats(1, s_shapes), feats(2, t_shapes)

    def gram(f):
        q = f.reshape(B, -1)
        g = q @ q.T
        return g / np.sqrt((g**2).sum(1, keepdims=True))

    expected = ((gram(n(t["stage2"])) - gram(n(s["stage2"]))) ** 2).sum() / B**2
    terms = call(make("sp", s_shapes, t_shapes), s, t)
    assert terms["sp"].shape == () and val(terms["sp"]) == pytest.approx(3000 * expected, rel=1e-10)


# -------------------------------------------------------------------------------------------------------- cc


def test_cc_benchmark_multiplies_consecutive_rows_of_the_head_differences():
    s_shapes, t_shapes = {"embedding": (7,)}, {"embedding": (9,)}
    m = make("cc", s_shapes, t_shapes)
    assert m.embed_s.out_features == m.embed_t.out_features == 128
    s, t = feats(1, s_shapes), feats(2, t_shapes)
    e_s = n(s["embedding"]) @ n(m.embed_s.weight).T + n(m.embed_s.bias)
    e_t = n(t["embedding"]) @ n(m.embed_t.weight).T + n(m.embed_t.bias)
    d = np.abs(e_s - e_t)
    expected = np.mean([d[i] @ d[i + 1] for i in range(B - 1)])
    assert val(call(m, s, t)["cc"]) == pytest.approx(0.02 * expected, rel=1e-10)


def test_cc_paper_matches_taylor_expanded_rbf_correlations():
    s_shapes, t_shapes = {"embedding": (7,)}, {"embedding": (9,)}
    m = make("cc", s_shapes, t_shapes, variant="paper")
    assert list(m.parameters()) == []  # no heads: the correlations of the raw embeddings are compared
    s, t = feats(1, s_shapes), feats(2, t_shapes)
    g = 0.4

    def psi(f):
        u = np_unit_rows(f)
        c = u @ u.T
        return np.exp(-2 * g) * (1 + 2 * g * c + (2 * g * c) ** 2 / 2)

    expected = ((psi(n(t["embedding"])) - psi(n(s["embedding"]))) ** 2).sum() / B**2
    assert val(call(m, s, t)["cc"]) == pytest.approx(0.02 * expected, rel=1e-10)


def test_cc_paper_kernel_approaches_the_gaussian_rbf():
    from kdbench.methods.cc import correlation

    x = torch.nn.functional.normalize(torch.randn(4, 3, dtype=torch.float64), dim=1)
    rbf = torch.exp(-0.4 * torch.cdist(x, x) ** 2)
    assert torch.allclose(correlation(x, 0.4, 12), rbf, atol=1e-9)


# ------------------------------------------------------------------------------------------------------- vid


def test_vid_is_the_gaussian_nll_with_per_channel_learned_variance():
    s_shapes = {"stage1": (3, 4, 4), "stage2": (4, 2, 2)}
    t_shapes = {"stage1": (2, 4, 4), "stage2": (5, 4, 4)}  # stage2: the teacher is pooled to 2×2
    m = make("vid", s_shapes, t_shapes)
    with torch.no_grad():
        m.log_scales[1].copy_(torch.linspace(-1.0, 2.0, 5))
    s, t = feats(1, s_shapes), feats(2, t_shapes)
    expected = 0.0
    for i, (f_s, f_t) in enumerate([(n(s["stage1"]), n(t["stage1"])),
                                    (n(s["stage2"]), np_pool_to(n(t["stage2"]), 2, 2))]):
        w = [n(m.regressors[i][j].weight)[:, :, 0, 0] for j in (0, 2, 4)]
        h = np.maximum(np.einsum("bchw,oc->bohw", f_s, w[0]), 0)
        h = np.maximum(np.einsum("bchw,oc->bohw", h, w[1]), 0)
        mu = np.einsum("bchw,oc->bohw", h, w[2])
        var = (np.log1p(np.exp(n(m.log_scales[i]))) + 1e-5)[None, :, None, None]
        expected += (0.5 * ((mu - f_t) ** 2 / var + np.log(var))).mean()
    assert val(call(m, s, t)["vid"]) == pytest.approx(expected, rel=1e-10)


def test_vid_starts_with_variance_five():
    m = make("vid", {"stage1": (3, 4, 4)}, {"stage1": (2, 4, 4)})
    var = np.log1p(np.exp(n(m.log_scales[0]))) + 1e-5
    np.testing.assert_allclose(var, 5.0, rtol=1e-6)  # α is stored in float32
    assert m.regressors[0][0].out_channels == 2 and m.regressors[0][0].bias is None


# ------------------------------------------------------------------------------------------------------- rkd


def test_rkd_weights_huber_losses_of_distances_and_angles():
    s_shapes, t_shapes = {"embedding": (4,)}, {"embedding": (6,)}
    s, t = feats(1, s_shapes), feats(2, t_shapes)

    def dist(x):
        d = np.linalg.norm(x[:, None] - x[None], axis=2)
        return d / d[d > 0].mean()

    def angles(x):  # [j, i, k]: cosine at x_j between x_i and x_k; a zero difference has zero direction
        e = x[None, :, :] - x[:, None, :]
        norm = np.linalg.norm(e, axis=2, keepdims=True)
        u = np.divide(e, norm, out=np.zeros_like(e), where=norm > 0)
        return np.einsum("jid,jkd->jik", u, u)

    xs, xt = n(s["embedding"]), n(t["embedding"])
    expected = 25 * np_huber(dist(xs), dist(xt)) + 50 * np_huber(angles(xs), angles(xt))
    assert val(call(make("rkd", s_shapes, t_shapes), s, t)["rkd"]) == pytest.approx(expected, rel=1e-8)


# ------------------------------------------------------------------------------------------------------- pkt


def test_pkt_is_the_kl_of_cosine_kernel_conditionals():
    s_shapes, t_shapes = {"embedding": (4,)}, {"embedding": (6,)}
    s, t = feats(1, s_shapes), feats(2, t_shapes)
    eps = 1e-7

    def cond(x):
        u = x / (np.sqrt((x**2).sum(1, keepdims=True)) + eps)
        k = (u @ u.T + 1) / 2
        return k / k.sum(1, keepdims=True)

    p, q = cond(n(t["embedding"])), cond(n(s["embedding"]))
    expected = (p * np.log((p + eps) / (q + eps))).mean()
    assert val(call(make("pkt", s_shapes, t_shapes), s, t)["pkt"]) == pytest.approx(30000 * expected, rel=1e-10)


# ----------------------------------------------------------------------------------------- all seven methods

DEFAULTS = {  # RepDistiller's scripts/run_cifar_distill.sh (-r 1 -a 0 -b …) and its loss modules' defaults
    "fitnet": {"weight": 100.0, "hint_epochs": 0},
    "at": {"weight": 1000.0, "p": 2.0},
    "sp": {"weight": 3000.0},
    "cc": {"weight": 0.02, "variant": "benchmark", "feat_dim": 128, "gamma": 0.4, "order": 2},
    "vid": {"weight": 1.0, "init_var": 5.0, "eps": 1e-5},
    "rkd": {"weight": 1.0, "distance_weight": 25.0, "angle_weight": 50.0},
    "pkt": {"weight": 30000.0},
}


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_defaults_are_the_benchmark_settings(name):
    p = METHODS.get(name).Params().model_dump()
    assert p == DEFAULTS[name] | {"ce_weight": 1.0, "kd_weight": 0.0, "kd_temperature": 4.0}


S_SHAPES = {"stem": (2, 4, 4), "stage1": (3, 4, 4), "stage2": (4, 2, 2), "embedding": (4,)}
T_SHAPES = {"stem": (2, 4, 4), "stage1": (5, 4, 4), "stage2": (6, 2, 2), "embedding": (6,)}
USED = {"fitnet": ["stage2"], "at": ["stage1", "stage2"], "sp": ["stage2"], "cc": ["embedding"],
        "vid": ["stage1", "stage2"], "rkd": ["embedding"], "pkt": ["embedding"]}


@pytest.mark.parametrize("name, params", [(k, {}) for k in sorted(USED)] + [("cc", {"variant": "paper"})])
def test_gradients_reach_the_student_and_the_method_but_not_the_teacher(name, params):
    m = make(name, S_SHAPES, T_SHAPES, kd_weight=0.5, **params)
    s, t = feats(1, S_SHAPES, grad=True), feats(2, T_SHAPES, grad=True)
    terms = call(m, s, t)
    assert set(terms) == {"ce", "kd", "cc" if name == "cc" else "hint" if name == "fitnet" else name}
    sum(terms.values()).backward()
    for tap in USED[name]:
        assert s[tap].grad is not None and s[tap].grad.abs().sum() > 0, tap
    assert all(f.grad is None for f in t.values())
    for pname, param in m.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", sorted(USED))
def test_an_ensemble_without_features_is_refused_up_front(name):
    with pytest.raises(ValueError, match="teacher's feature taps"):
        make(name, S_SHAPES, {})


# --------------------------------------------------------------------------------------------- through the engine

DATA = Component("digits", {"train_fraction": 1.0})
TEACHER_MODEL = Component("cnn", {"channels": [8, 16], "dropout": 0.0})
STUDENT_MODEL = Component("cnn", {"channels": [4, 8], "dropout": 0.0})
RECIPE = Recipe(epochs=2, batch_size=64).model_dump(mode="json")


@pytest.fixture(scope="module")
def trained_teacher(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("store"))
    job = Job("teacher", DATA, TEACHER_MODEL, RECIPE, Component("none", {}), 0)
    run_job(job, store)
    return store, job


@pytest.mark.parametrize("name, overrides", [(k, {}) for k in sorted(USED)]
                         + [("cc", {"variant": "paper"}), ("fitnet", {"hint_epochs": 1})])
def test_trains_through_the_engine(trained_teacher, name, overrides):
    store, teacher = trained_teacher
    params = METHODS.get(name).Params(**overrides).model_dump(mode="json")
    job = Job("student", DATA, STUDENT_MODEL, RECIPE, Component(name, params), 0, None,
              (Upstream(teacher.job_id, TEACHER_MODEL),))
    final = run_job(job, store)
    assert np.isfinite(final["test_acc"])
    history = json.loads(store.read_bytes(Store.artifact(job.job_id, "history.json")))
    assert len(history) == overrides.get("hint_epochs", 0) + 2
    assert all(np.isfinite(h["train_loss"]) for h in history)
