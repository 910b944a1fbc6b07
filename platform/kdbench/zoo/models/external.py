"""timm and torchvision models by name: `arch: timm/<name>` and `arch: torchvision/<name>` in a suite.

Any classification model `timm.list_models()` or `torchvision.models.list_models(module=torchvision.models)`
names, built untrained (`pretrained=False` / `weights=None`: nothing is downloaded; teacher weights come from a
local file, `weights:` in the suite) with the dataset's class count and input channels. Parameters: `options`,
keyword arguments passed to the constructor as they are (e.g. `{drop_rate: 0.2}` for timm, `{width_mult: 0.5}`
for torchvision's MobileNets); a name or option the library does not know is a suite error.

Taps (for feature methods, kdbench/methods/taps.py): `stem`, `stage1..N` and `embedding` (what the classifier
reads, (B, D)), with no pre-activation taps. timm: the modules of the model's `feature_info` (timm's own list of
feature levels: `stem` is its first level, the stages the rest — for ResNets act1, layer1..4; for MobileNet-V1
blocks.0..4, reductions 2, 4, 8, 16, 32). torchvision: the same rule applied to the model's stages, found once
per (name, input shape) by a forward on the meta device (no memory, no compute): among the backbone's modules in
order (`features.<i>` for the MobileNets, VGG, EfficientNets…, the top-level children otherwise; the classifier
and global pools left out), the last module at each spatial resolution — torchvision's ResNets give relu (the
stem, reduction 2) and layer1..4, as timm's `feature_info` does. Taps are read by forward hooks registered for
the forward only, so the network runs exactly as the library wrote it.

The libraries are imported only when such a model is named (`pip install 'kdbench[vision]'`). Weights files:
the model's state-dict keys are the library's own under `net.` (`TappedNet.adapt_state` adds the prefix to a
library checkpoint, so torchvision's and timm's files load as they are).
"""

from __future__ import annotations

from functools import cache, partial

import torch
from pydantic import Field
from torch import nn

from kdbench.registry import RegistryError, suggest

from .base import Arch, ArchParams, ModelOutput
from .features import image_channels

Option = bool | int | float | str


class ExternalParams(ArchParams):
    options: dict[str, Option] = Field(default={}, max_length=100)  # constructor keyword arguments


class TappedNet(nn.Module):
    """A library's classifier behind kdbench's contract: ModelOutput(logits, taps) from forward hooks."""

    PREFIX = "net."

    def __init__(self, net: nn.Module, taps: tuple[tuple[str, str], ...], classifier: str) -> None:
        super().__init__()
        self.net = net
        self.taps = taps  # (tap name, module path in net), in the contract's order
        self.classifier = classifier  # the module whose input is the `embedding` tap

    def forward(self, x) -> ModelOutput:
        out: dict[str, torch.Tensor] = {}

        def keep(name, module, args, output):
            out[name] = output

        def embed(module, args):
            out["embedding"] = torch.flatten(args[0], 1)

        handles = [self.net.get_submodule(path).register_forward_hook(partial(keep, name)) for name, path in self.taps]
        handles.append(self.net.get_submodule(self.classifier).register_forward_pre_hook(embed))
        try:
            logits = self.net(x)
        finally:
            for h in handles:
                h.remove()
        features = {name: out[name] for name, _ in self.taps}
        features["embedding"] = out["embedding"]
        return ModelOutput(logits, features)

    def adapt_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A library checkpoint's keys (no `net.` prefix) as this module's; kdbench's own pass unchanged."""
        if any(k.startswith(self.PREFIX) for k in state):
            return state
        return {self.PREFIX + k: v for k, v in state.items()}


def stage_taps(paths: list[str]) -> tuple[tuple[str, str], ...]:
    """`stem` for the first level, `stage1..N` for the rest."""
    if len(paths) < 2:
        raise ValueError(f"a model needs at least two feature levels for its taps, found {paths}")
    return (("stem", paths[0]), *((f"stage{i}", p) for i, p in enumerate(paths[1:], 1)))


def last_linear(net: nn.Module) -> str:
    """The path of the last nn.Linear in module order: the classifier, whose input is the embedding."""
    names = [name for name, m in net.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ValueError(f"{type(net).__name__} has no linear classifier to read the embedding from")
    return names[-1]


# ---- timm --------------------------------------------------------------------------------------------------


def _timm():
    try:
        import timm
    except ImportError:
        raise RegistryError("timm models need timm: pip install 'kdbench[vision]'") from None
    return timm


def timm_known(name: str) -> str | None:
    """None when timm knows `name`; else why not (with the closest names)."""
    timm = _timm()
    if timm.is_model(name):
        return None
    return f"unknown timm model '{name}'{suggest(name, timm.list_models())}"


def build_timm(name: str, p: ExternalParams, input_shape: tuple[int, ...], num_classes: int) -> TappedNet:
    timm = _timm()
    c = image_channels(input_shape, f"timm/{name}")
    try:
        net = timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=c, **p.options)
    except TypeError as e:  # an option the constructor does not take
        raise ValueError(f"timm/{name}: {e}") from None
    info = getattr(net, "feature_info", None)
    if not info:
        raise ValueError(f"timm/{name} declares no feature_info (timm's feature levels)")
    paths = [f["module"] for f in info]
    classifier = net.get_classifier()
    path = next((n for n, m in net.named_modules() if m is classifier), None)
    return TappedNet(net, stage_taps(paths), path if isinstance(classifier, nn.Linear) else last_linear(net))


# ---- torchvision -------------------------------------------------------------------------------------------


def _tv_models():
    try:
        import torchvision.models as tvm
    except ImportError:
        raise RegistryError("torchvision models need torchvision: pip install 'kdbench[vision]'") from None
    return tvm


@cache
def torchvision_names() -> tuple[str, ...]:
    tvm = _tv_models()
    return tuple(tvm.list_models(module=tvm))  # the classification models


def torchvision_known(name: str) -> str | None:
    names = torchvision_names()
    return None if name in names else f"unknown torchvision model '{name}'{suggest(name, list(names))}"


def _tv_net(name: str, options: dict, num_classes: int) -> nn.Module:
    try:
        return _tv_models().get_model(name, weights=None, num_classes=num_classes, **options)
    except TypeError as e:
        raise ValueError(f"torchvision/{name}: {e}") from None


def _candidates(net: nn.Module) -> list[str]:
    """The backbone's modules in order: `features.<i>`, or the top-level children; no classifier or pool."""
    body, prefix = (net.features, "features.") if isinstance(getattr(net, "features", None), nn.Sequential) else \
        (net, "")
    skip = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Linear, nn.Dropout, nn.Flatten)
    out = []
    for name, m in body.named_children():
        if isinstance(m, skip) or any(isinstance(s, nn.Linear) for s in m.modules()):
            continue
        out.append(prefix + name)
    return out


@cache
def torchvision_levels(name: str, options_json: str, input_shape: tuple[int, ...]) -> tuple[str, ...]:
    """The last module at each spatial resolution, from one forward on the meta device (shapes only)."""
    import json

    with torch.device("meta"):
        net = _tv_net(name, json.loads(options_json), 10).eval()
        shapes: dict[str, tuple] = {}
        paths = _candidates(net)
        hooks = [net.get_submodule(p).register_forward_hook(
            lambda m, a, o, p=p: shapes.__setitem__(p, tuple(o.shape)) if isinstance(o, torch.Tensor) else None)
            for p in paths]
        with torch.no_grad():
            net(torch.zeros(1, *input_shape))
        for h in hooks:
            h.remove()
    levels: list[str] = []
    last_size = None
    for p in paths:
        shape = shapes.get(p)
        if shape is None or len(shape) != 4:
            continue
        if shape[2:] == last_size:
            levels[-1] = p
        else:
            levels.append(p)
            last_size = shape[2:]
    return tuple(levels)


def build_torchvision(name: str, p: ExternalParams, input_shape: tuple[int, ...], num_classes: int) -> TappedNet:
    import json

    c = image_channels(input_shape, f"torchvision/{name}")
    if c != 3:
        raise ValueError(f"torchvision/{name} takes 3-channel images, the input has {c} (use a timm model)")
    options = json.dumps(p.options, sort_keys=True)
    levels = torchvision_levels(name, options, tuple(input_shape))
    net = _tv_net(name, p.options, num_classes)
    return TappedNet(net, stage_taps(list(levels)), last_linear(net))


# ---- the families, as registry entries -----------------------------------------------------------------------

FAMILIES = {"timm": (timm_known, build_timm), "torchvision": (torchvision_known, build_torchvision)}


def family_problem(arch: str) -> str | None:
    """None when `arch` is `<family>/<name>` of a model the family's library knows; else why not."""
    family, _, name = arch.partition("/")
    known, _ = FAMILIES[family]
    try:
        return known(name)
    except RegistryError as e:  # the library is not installed
        return str(e)


@cache
def family_arch(arch: str) -> Arch:
    """The registry entry of `timm/<name>` or `torchvision/<name>` (after `family_problem` said None)."""
    family, _, name = arch.partition("/")
    _, build_family = FAMILIES[family]

    def build(p: ExternalParams, input_shape: tuple[int, ...], num_classes: int) -> TappedNet:
        return build_family(name, p, input_shape, num_classes)

    return Arch(arch, ExternalParams, build)  # a function of this module: no plugin code in the job's identity


def is_family(arch: str) -> bool:
    return arch.partition("/")[0] in FAMILIES and "/" in arch
