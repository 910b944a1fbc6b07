"""ImageNet ResNets: torchvision's parameter counts and state_dict layout, the feature-tap contract, weight loading."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from kdbench.zoo.models import count_parameters, create_model
from kdbench.zoo.models.imagenet_resnet import load_torchvision_weights

IMAGENET = (3, 224, 224)
SMALL = (3, 64, 64)  # big enough for layer4 to keep a 2×2 map, small enough for a fast CPU forward

# torchvision's published parameter counts (its weights docs, `num_params` of each IMAGENET1K_V1 entry)
TORCHVISION_COUNTS = {
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
    "resnet101": 44_549_160, "resnet152": 60_192_808,
}


def bn_keys(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    return {**{f"{prefix}.{k}": (c,) for k in ("weight", "bias", "running_mean", "running_var")},
            f"{prefix}.num_batches_tracked": ()}


def torchvision_resnet18_keys() -> dict[str, tuple[int, ...]]:
    """Written from torchvision's ResNet(BasicBlock, [2, 2, 2, 2]), not from the module under test."""
    keys = {"conv1.weight": (64, 3, 7, 7), **bn_keys("bn1", 64)}
    c_in = 64
    for layer, c in enumerate((64, 128, 256, 512), 1):
        for b in range(2):
            p = f"layer{layer}.{b}"
            keys[f"{p}.conv1.weight"] = (c, c_in if b == 0 else c, 3, 3)
            keys[f"{p}.conv2.weight"] = (c, c, 3, 3)
            keys.update(bn_keys(f"{p}.bn1", c) | bn_keys(f"{p}.bn2", c))
            if b == 0 and layer > 1:  # stride 2 and a channel change: 1×1 projection shortcut
                keys[f"{p}.downsample.0.weight"] = (c, c_in, 1, 1)
                keys.update(bn_keys(f"{p}.downsample.1", c))
        c_in = c
    return keys | {"fc.weight": (1000, 512), "fc.bias": (1000,)}


@pytest.mark.parametrize("arch", list(TORCHVISION_COUNTS))
def test_parameter_count_is_torchvisions(arch):
    assert count_parameters(create_model(arch, {}, IMAGENET, 1000)) == TORCHVISION_COUNTS[arch]


def test_resnet18_state_dict_has_torchvisions_keys_and_shapes():
    ours = {k: tuple(v.shape) for k, v in create_model("resnet18", {}, IMAGENET, 1000).state_dict().items()}
    expected = torchvision_resnet18_keys()
    assert set(ours) == set(expected)
    assert ours == expected


@pytest.mark.parametrize("arch,expansion", [("resnet18", 1), ("resnet50", 4)])
def test_forward_follows_the_feature_contract(arch, expansion):
    torch.manual_seed(0)
    model = create_model(arch, {}, SMALL, 10)
    out = model(torch.randn(1, *SMALL))
    assert out.logits.shape == (1, 10) and torch.isfinite(out.logits).all()
    c = [64 * expansion * 2**i for i in range(4)]  # (64, 128, 256, 512) · expansion
    maps = {"stage1": (c[0], 16, 16), "stage2": (c[1], 8, 8), "stage3": (c[2], 4, 4), "stage4": (c[3], 2, 2)}
    expected = {"stem": (64, 16, 16), **maps, **{k.replace("stage", "preact"): s for k, s in maps.items()},
                "embedding": (c[3],)}
    assert {k: tuple(v.shape[1:]) for k, v in out.features.items()} == expected
    assert list(out.features) == list(expected)  # the contract's order
    for i in range(1, 5):
        assert torch.equal(out.features[f"stage{i}"], F.relu(out.features[f"preact{i}"]))
    assert torch.allclose(model.fc(out.features["embedding"]), out.logits)


def test_resnet18_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = create_model("resnet18", {}, SMALL, 10)
    F.cross_entropy(model(torch.randn(2, *SMALL)).logits, torch.tensor([1, 7])).backward()
    silent = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not silent, f"no gradient reaches {silent}"


def test_zero_init_residual_zeroes_each_blocks_last_bn():
    model = create_model("resnet50", {"zero_init_residual": True}, IMAGENET, 1000)
    last = [p for n, p in model.named_parameters() if n.endswith("bn3.weight")]
    assert len(last) == 16 and all((p == 0).all() for p in last)


def test_load_torchvision_weights_round_trips(tmp_path):
    torch.manual_seed(0)
    source = create_model("resnet18", {}, SMALL, 10)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    torch.manual_seed(1)
    target = load_torchvision_weights(create_model("resnet18", {}, SMALL, 10), path)
    assert all(torch.equal(v, target.state_dict()[k]) for k, v in source.state_dict().items())


def test_load_torchvision_weights_names_the_path_when_it_fails(tmp_path):
    model = create_model("resnet18", {}, SMALL, 10)
    missing = tmp_path / "absent.pth"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        load_torchvision_weights(model, missing)
    state = model.state_dict()
    state["head.weight"] = state.pop("fc.weight")
    renamed = tmp_path / "renamed.pth"
    torch.save(state, renamed)
    with pytest.raises(ValueError, match=re.escape(str(renamed))) as err:
        load_torchvision_weights(model, renamed)
    assert "fc.weight" in str(err.value) and "head.weight" in str(err.value)


def test_torchvision_resnet18_loads_strictly():
    torchvision = pytest.importorskip("torchvision")
    model = create_model("resnet18", {}, IMAGENET, 1000)
    model.load_state_dict(torchvision.models.resnet18().state_dict(), strict=True)
