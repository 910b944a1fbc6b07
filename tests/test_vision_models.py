"""timm and torchvision models by name (zoo/models/external.py): sizes, taps, feature methods on them, teacher
weights from .safetensors/.pth files and the suite errors for bad names and misfit files."""

from __future__ import annotations

import pytest
import torch

from kdbench.methods import MethodContext, create_method
from kdbench.methods.base import Batch, TrainState
from kdbench.outputs import TeacherOutput
from kdbench.suite import SpecError, load_suite
from kdbench.teachers.sources import TeacherMismatch, checkpoint_file, load_weights
from kdbench.zoo.models import count_parameters, create_model
from kdbench.zoo.models.features import feature_shapes

from .conftest import write_suite
from .imagenet_like import write_imagenet_like

timm = pytest.importorskip("timm")
pytest.importorskip("torchvision")

# torchvision's published parameter counts (its model documentation, 1000 classes), written down here
TORCHVISION_PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
                      "mobilenet_v2": 3_504_872}


def mobilenet_v1_params(classes: int) -> int:
    """Howard et al. 2017, Table 1: a 3×3 stem conv to 32, 13 depthwise-separable blocks, BN after each conv."""
    blocks = [(32, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512), *[(512, 512)] * 5,
              (512, 1024), (1024, 1024)]
    stem = 3 * 9 * 32 + 2 * 32
    return stem + sum(9 * a + 2 * a + a * b + 2 * b for a, b in blocks) + 1024 * classes + classes


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_torchvision_models_by_name_have_the_published_size(name):
    with torch.device("meta"):  # sizes only: nothing allocated
        assert count_parameters(create_model(f"torchvision/{name}", {}, (3, 224, 224), 1000)) == \
            TORCHVISION_PARAMS[name]


def test_timm_models_by_name_have_their_size_and_the_dataset_classes():
    with torch.device("meta"):
        assert count_parameters(create_model("timm/mobilenetv1_100", {}, (3, 224, 224), 1000)) == \
            mobilenet_v1_params(1000) == 4_231_976
        assert count_parameters(create_model("timm/resnet18", {}, (3, 224, 224), 1000)) == \
            TORCHVISION_PARAMS["resnet18"]  # the same network as torchvision's
        assert count_parameters(create_model("timm/mobilenetv1_100", {}, (3, 64, 64), 10)) == mobilenet_v1_params(10)


@pytest.mark.parametrize("arch", ["timm/resnet50", "timm/mobilenetv1_100", "torchvision/resnet34",
                                  "torchvision/mobilenet_v2"])
def test_taps_follow_timms_feature_info(arch):
    """stem + stage1..4 have feature_info's channels and spatial size input/reduction (torchvision's by the
    same-named timm model's feature_info, or timm's mobilenetv2_100 reductions); embedding the classifier's input."""
    family, name = arch.split("/")
    ref = {"resnet34": "resnet34", "mobilenet_v2": "mobilenetv2_100"}.get(name, name)
    info = timm.create_model(ref, pretrained=False).feature_info
    shapes = feature_shapes(create_model(arch, {}, (3, 64, 64), 10), (3, 64, 64))
    names = ["stem", *(f"stage{i}" for i in range(1, len(info)))]
    assert list(shapes) == [*names, "embedding"]
    for tap, f in zip(names, info, strict=True):
        channels, h, w = shapes[tap]
        assert (h, w) == (64 // f["reduction"], 64 // f["reduction"]), tap
        if not (name == "mobilenet_v2" and tap == "stage4"):  # torchvision's last level is the 1280-wide head conv
            assert channels == f["num_chs"], tap
    embedding = {"resnet50": 2048, "mobilenetv1_100": 1024, "resnet34": 512, "mobilenet_v2": 1280}[name]
    assert shapes["embedding"] == (embedding,)


def test_taps_are_the_modules_outputs_and_logits_the_librarys():
    torch.manual_seed(0)
    model = create_model("timm/resnet18", {}, (3, 64, 64), 10).eval()
    x = torch.randn(2, 3, 64, 64)
    out = model(x)
    with torch.no_grad():
        direct = model.net.forward_intermediates(x, indices=5, intermediates_only=True)  # timm's own features
        assert torch.equal(out.logits, model.net(x))
    for tap, ref in zip(["stem", "stage1", "stage2", "stage3", "stage4"], direct, strict=True):
        assert torch.allclose(out.features[tap], ref), tap
    assert torch.allclose(out.features["embedding"], model.net.forward_head(model.net.forward_features(x),
                                                                             pre_logits=True))


@pytest.fixture(scope="module")
def pair():
    """A torchvision ResNet-50 teacher and a timm MobileNet-V1 student on 32-pixel inputs (built once)."""
    torch.manual_seed(0)
    shape = (3, 32, 32)
    return shape, create_model("timm/mobilenetv1_100", {}, shape, 5), \
        create_model("torchvision/resnet50", {}, shape, 5).eval()


@pytest.mark.parametrize("method,params", [("kd", {"temperature": 1, "alpha": 0.5}), ("at", {}),
                                           ("crd", {"nce_k": 16}), ("dkd", {"temperature": 1, "beta": 2.0})])
def test_feature_and_logit_methods_train_on_a_torchvision_teacher_and_a_timm_student(pair, method, params):
    torch.manual_seed(0)
    (shape, student, teacher), classes, n = pair, 5, 40
    student.zero_grad()
    labels = torch.arange(n) % classes
    ctx = MethodContext(classes, n, feature_shapes(student, shape), feature_shapes(teacher, shape), labels,
                        student=student, teacher=teacher)
    m = create_method(method, params, ctx)
    x, index = torch.randn(8, *shape), torch.arange(8)
    with torch.no_grad():
        t = teacher(x)
    terms = m(Batch(x, labels[index], index), student(x), TeacherOutput(t.logits[None], features=t.features),
              TrainState(0, 2))
    loss = sum(terms.values())
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert student.net.conv_stem.weight.grad.abs().sum() > 0  # the gradient reaches the student's first layer


def test_an_unknown_name_is_one_suite_error_with_the_closest(tmp_path):
    text = """\
    name: bad
    dataset: {name: synthetic, n_train: 64, n_val: 32, n_test: 32, dim: 8, num_classes: 4}
    recipe: {epochs: 1, batch_size: 32, optimizer: {name: sgd, lr: 0.1}}
    students:
      - {name: s, arch: timm/resnet181}
    methods: [none]
    seeds: [0]
    """
    with pytest.raises(SpecError) as e:
        load_suite(str(write_suite(tmp_path, text)))
    assert str(e.value).endswith("suite.yaml:5: students[0].arch: unknown timm model 'resnet181' "
                                 "(did you mean 'resnet18'?)")
    with pytest.raises(SpecError, match=r"suite.yaml:5: students\[0\].arch: unknown torchvision model 'resnet35'"):
        load_suite(str(write_suite(tmp_path, text.replace("timm/resnet181", "torchvision/resnet35"))))


def _library_state(arch: str, classes: int = 10, seed: int = 0) -> dict[str, torch.Tensor]:
    """A checkpoint as the library writes it (no `net.` prefix)."""
    torch.manual_seed(seed)
    return {k.removeprefix("net."): v.contiguous() for k, v in
            create_model(arch, {}, (3, 32, 32), classes).state_dict().items()}


@pytest.mark.parametrize("layout", ["plain.pth", "state_dict.pth", "model_module.pth", "file.safetensors"])
def test_teacher_weights_load_from_each_file_layout(tmp_path, layout):
    from safetensors.torch import save_file

    state = _library_state("torchvision/resnet18")
    path = tmp_path / layout
    if layout == "plain.pth":  # torchvision's
        torch.save(state, path)
    elif layout == "state_dict.pth":  # timm's train.py, Lightning
        torch.save({"state_dict": state, "epoch": 3}, path)
    elif layout == "model_module.pth":  # kdbench's wrapper around a DataParallel state dict
        torch.save({"model": {f"module.{k}": v for k, v in state.items()}}, path)
    else:
        save_file(state, str(path))
    model = create_model("torchvision/resnet18", {}, (3, 32, 32), 10).eval()
    load_weights(model, checkpoint_file(str(path)), str(path), "torchvision/resnet18")
    assert all(torch.equal(model.state_dict()[f"net.{k}"], v) for k, v in state.items())


SUITE = """\
name: w
dataset: {{name: imagefolder, root: {root}, image_size: 32, val_size: 0}}
protocol: paper
recipe: {{epochs: 1, batch_size: 16, optimizer: {{name: sgd, lr: 0.1}}}}
teachers:
  - {{name: t, arch: torchvision/resnet34, weights: {file}}}
students:
  - {{name: s, arch: timm/resnet18}}
methods: [kd]
seeds: [0]
"""


def test_a_weights_file_is_checked_against_its_architecture_when_the_suite_loads(tmp_path):
    from safetensors.torch import save_file

    root = write_imagenet_like(tmp_path / "data", classes=3, train=2, val=1, size=32)
    save_file(_library_state("torchvision/resnet34", classes=3), str(tmp_path / "r34.safetensors"))
    suite = load_suite(str(write_suite(tmp_path, SUITE.format(root=root, file="r34.safetensors"))))
    assert suite.teachers[0].weights == str(tmp_path / "r34.safetensors")
    torch.save(_library_state("torchvision/resnet18", classes=3), tmp_path / "r18.pth")  # another architecture
    with pytest.raises(SpecError) as e:
        load_suite(str(write_suite(tmp_path, SUITE.format(root=root, file="r18.pth"))))
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path / 'suite.yaml'}:6: teachers[0].weights: {tmp_path / 'r18.pth'}: the "
                              "weights do not fit architecture 'torchvision/resnet34': missing: net.layer1.2.")
    assert "(+" in message  # many more missing keys, counted not listed
    save_file(_library_state("torchvision/resnet34", classes=5), str(tmp_path / "r34_5.safetensors"))  # 5 classes
    with pytest.raises(SpecError, match=r"shape mismatch: net.fc.weight \(5, 512\) in the file, \(3, 512\) in the "
                                        r"model"):
        load_suite(str(write_suite(tmp_path, SUITE.format(root=root, file="r34_5.safetensors"))))
    (tmp_path / "junk.safetensors").write_bytes(b"not a header")
    with pytest.raises(SpecError, match=r"teachers\[0\].weights: .*junk.safetensors: not a safetensors file"):
        load_suite(str(write_suite(tmp_path, SUITE.format(root=root, file="junk.safetensors"))))


def test_a_misfit_file_fails_the_pretrained_load_in_one_line(tmp_path):
    torch.save(_library_state("torchvision/resnet18"), tmp_path / "r18.pth")
    model = create_model("torchvision/resnet34", {}, (3, 32, 32), 10)
    with pytest.raises(TeacherMismatch) as e:
        load_weights(model, checkpoint_file(str(tmp_path / "r18.pth")), "r18.pth", "torchvision/resnet34")
    assert "\n" not in str(e.value) and "missing: net.layer1.2." in str(e.value)


def test_options_reach_the_constructor_and_a_wrong_one_is_a_suite_error(tmp_path):
    with torch.device("meta"):
        half = count_parameters(create_model("torchvision/mobilenet_v2", {"options": {"width_mult": 0.5}},
                                             (3, 224, 224), 1000))
    assert half == 1_968_680 < TORCHVISION_PARAMS["mobilenet_v2"]  # width_mult 0.5 reached torchvision's builder
    root = write_imagenet_like(tmp_path / "data", classes=3, train=2, val=1, size=32)
    text = SUITE.format(root=root, file="x")
    text = text.replace("teachers:\n  - {name: t, arch: torchvision/resnet34, weights: x}\n", "")
    text = text.replace("methods: [kd]", "methods: [none]").replace(
        "{name: s, arch: timm/resnet18}", "{name: s, arch: timm/resnet18, options: {bogus: 1}}")
    with pytest.raises(SpecError, match=r"suite.yaml:6: students\[0\].arch: cannot build 'timm/resnet18' with these "
                                        r"parameters: timm/resnet18: .*bogus"):
        load_suite(str(write_suite(tmp_path, text)))


def test_without_the_library_the_name_says_what_to_install(monkeypatch):
    import sys

    from kdbench.zoo.models import ARCHS

    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` now raises ImportError
    assert "timm/resnet18" not in ARCHS
    assert ARCHS.unknown("timm/resnet18") == "timm models need timm: pip install 'kdbench[vision]'"
