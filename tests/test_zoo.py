"""Registries, datasets and models: real invariants, not smoke."""

from __future__ import annotations

import pytest
import torch

from kdbench.registry import Registry, RegistryError
from kdbench.zoo.datasets import DATASETS, load_dataset
from kdbench.zoo.models import ARCHS, count_parameters, create_model


def test_registry_refuses_duplicates_and_suggests_on_a_miss():
    reg: Registry[int] = Registry("thing")
    reg.register("alpha")(1)
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("alpha")(2)
    with pytest.raises(RegistryError, match="did you mean 'alpha'"):
        reg.get("alpah")


def test_digits_split_is_fixed_disjoint_and_stratified():
    d = load_dataset("digits", {})
    assert (len(d.train), len(d.val), len(d.test)) == (1078, 359, 360)
    assert d.input_shape == (1, 8, 8) and d.num_classes == 10
    assert 0.0 <= float(d.train.x.min()) and float(d.train.x.max()) <= 1.0
    splits = (d.train, d.val, d.test)
    rows = {tuple(x.flatten().tolist()) + (int(y),) for s in splits for x, y in zip(s.x, s.y, strict=True)}
    assert len(rows) >= 1797 - 5  # (digits holds a few exact duplicate images)
    per_class = torch.bincount(d.test.y, minlength=10)
    assert int(per_class.min()) >= 35  # stratified: every class ~36 times in 360
    again = load_dataset("digits", {})
    assert torch.equal(again.test.x, d.test.x)
    half = load_dataset("digits", {"train_fraction": 0.5})
    assert len(half.train) == 539 and torch.equal(half.test.y, d.test.y)


def test_synthetic_data_is_a_function_of_its_parameters():
    a = load_dataset("synthetic", {"n_train": 100, "n_val": 10, "n_test": 20, "label_noise": 0.1})
    b = load_dataset("synthetic", {"n_train": 100, "n_val": 10, "n_test": 20, "label_noise": 0.1})
    c = load_dataset("synthetic", {"n_train": 100, "n_val": 10, "n_test": 20, "data_seed": 1})
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.train.y, b.train.y)
    assert not torch.equal(a.train.x, c.train.x)
    assert len(torch.unique(a.train.y)) > 1


@pytest.mark.parametrize("arch,params", [("mlp", {"widths": [32, 16], "dropout": 0.1}), ("cnn", {"channels": [4, 8]})])
def test_models_give_logits_embeddings_and_gradients_everywhere(arch, params):
    model = create_model(arch, params, (1, 8, 8), 10)
    out = model(torch.rand(5, 1, 8, 8))
    assert out.logits.shape == (5, 10) and out.features["embedding"].shape[0] == 5
    assert torch.isfinite(out.logits).all()
    out.logits.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_mlp_parameter_count_is_the_formula():
    model = create_model("mlp", {"widths": [32, 16]}, (1, 8, 8), 10)
    assert count_parameters(model) == (64 * 32 + 32) + (32 * 16 + 16) + (16 * 10 + 10)


def test_registries_list_the_spine_components():
    assert {"mlp", "cnn"} <= set(ARCHS.names())
    assert {"digits", "synthetic"} <= set(DATASETS.names())
