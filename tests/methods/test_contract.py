"""The contract every registered method keeps (docs/adding-a-method.md), checked for each one — the built-in
methods and the guide's example plugin alike:

(a) its Params defaults equal the documented ones (the `Params defaults:` block ending its docstring);
(b) one training step of a real small student and teacher: gradients reach every student parameter and
    every parameter of the method's own modules, never the teacher;
(c) it trains fused (under `torch.vmap`, as engine/fused.py runs it) with the per-model values of separate
    runs, or it declares `fusable = False`;
(d) one engine epoch (`run_job`) on each task it declares.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from torch.func import functional_call, stack_module_state

from kdbench.engine import run_job
from kdbench.engine.fused import fusable
from kdbench.jobs import Component, Job, Upstream
from kdbench.methods import METHODS, Batch, MethodContext, TeacherOutput, TrainState, create_method
from kdbench.store import Store
from kdbench.suite.plugins import import_plugins
from kdbench.suite.schema import Recipe
from kdbench.tasks import TASKS
from kdbench.zoo.models import create_model
from kdbench.zoo.models.features import feature_shapes

from .helpers import actual_defaults, documented_defaults

# Plugin files whose methods keep the contract too: the guide's example (add your own plugin's path here).
PLUGINS = [Path(__file__).resolve().parents[2] / "docs" / "examples" / "plugin_method" / "my_method.py"]
import_plugins([str(p) for p in PLUGINS])
# Every registered method but the fault-injection ones of tests/faulty_plugin.py (bugs on purpose).
NAMES = [n for n in METHODS.names() if not n.startswith("test_")]

SHAPE, CLASSES, B, N_TRAIN = (1, 8, 8), 4, 8, 32
STUDENT = {"channels": [4, 8], "dropout": 0.0}
TEACHER = {"channels": [4, 8], "dropout": 0.0}  # equal channels: FSP needs them
# Methods that need a student protocol (`Needs.student`) get a (teacher, student) pair that offers it:
# protocol -> ((arch, params) of the teacher, of the student), layer for layer alike (vs pairs the weights).
PROTOCOL_PAIRS = {"variational_kl": (("mlp", {"widths": [16]}), ("svd_mlp", {"widths": [16]}))}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(params: dict, seed: int, arch: str = "cnn"):
    torch.manual_seed(seed)
    return create_model(arch, params, SHAPE, CLASSES)


def _pair(name: str, seeds: tuple[int, int] = (0, 1)):
    """A student and a teacher for `name`: the cnn pair, or the pair of the student protocol it needs."""
    protocol = METHODS.get(name).needs.student
    if protocol is None:
        return _model(STUDENT, seeds[0]), _model(TEACHER, seeds[1])
    (t_arch, t_params), (s_arch, s_params) = PROTOCOL_PAIRS[protocol]
    return _model(s_params, seeds[0], s_arch), _model(t_params, seeds[1], t_arch)


def _build(name: str, student, teacher, shape=SHAPE):
    ctx = MethodContext(num_classes=CLASSES, num_train=N_TRAIN, student_features=feature_shapes(student, shape),
                        teacher_features=feature_shapes(teacher, shape), train_labels=torch.arange(N_TRAIN) % CLASSES,
                        student=student, teacher=teacher)
    torch.manual_seed(0)
    return create_method(name, {}, ctx)


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(B, *SHAPE, generator=g), torch.arange(B) % CLASSES, torch.arange(B)


# Token-level methods (masked_lm): tiny BERTs of one width on token ids, 15% of them masked targets.
BERT = {"hidden_size": 16, "heads": 2, "intermediate_size": 32, "max_positions": 12, "dropout": 0.0,
        "attention_dropout": 0.0}


def _token_setup(name: str):
    torch.manual_seed(0)
    student = create_model("hf/masked_lm", {**BERT, "num_layers": 1}, (12,), 30)
    teacher = create_model("hf/masked_lm", {**BERT, "num_layers": 2}, (12,), 30)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(5, 30, (B, 12), generator=g)
    x[:, -3:] = 0  # padding
    y = torch.where(torch.rand(B, 12, generator=g) < 0.3, x, torch.full_like(x, -100))
    y[:, -3:], y[:, 1] = -100, x[:, 1]  # never padding; at least one target per row
    ctx = MethodContext(num_classes=30, num_train=N_TRAIN, student_features=feature_shapes(student, (12,)),
                        teacher_features=feature_shapes(teacher, (12,)), task=TASKS.get("masked_lm")())
    return student, teacher, create_method(name, {}, ctx), (x, y, torch.arange(B))


def _setup(name: str):
    """Student, teacher, the method and a batch, on the method's first task's kind of data."""
    if METHODS.get(name).tasks[0] == "masked_lm":
        return _token_setup(name)
    student, teacher = _pair(name)
    return student, teacher, _build(name, student, teacher), _data()


def _stages(method) -> list[TrainState]:
    init = [TrainState(0, method.init_epochs, "init")] if method.init_epochs else []
    return [*init, TrainState(0, 2, "main")]


@pytest.mark.parametrize("name", NAMES)
def test_defaults_are_the_documented_ones(name):
    cls = METHODS.get(name)
    assert documented_defaults(cls) == actual_defaults(cls)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_the_student_and_the_methods_modules_never_the_teacher(name):
    if not {"classification", "regression", "masked_lm"} & set(METHODS.get(name).tasks):
        pytest.skip(f"{name} needs a task-specific student; tests/methods/test_{name}.py checks its gradients")
    student, teacher, method, (x, y, idx) = _setup(name)
    own_with_grad: set[str] = set()
    for state in _stages(method):
        for module in (student, teacher, method):
            module.zero_grad(set_to_none=True)
            module.train()
        out, t_out = student(x), teacher(x)  # the teacher with autograd on: nothing may flow into it
        t = TeacherOutput(t_out.logits[None], features=t_out.features) if method.needs.teacher else None
        terms = method(Batch(x, y, idx), out, t, state)
        assert terms and all(v.dim() == 0 and torch.isfinite(v) for v in terms.values()), terms
        sum(terms.values()).backward()
        assert all(p.grad is None or not p.grad.any() for p in teacher.parameters()), "the teacher got a gradient"
        if state.stage == "main":  # the main stage trains the whole student (the init stage may train part)
            missing = [n for n, p in student.named_parameters() if p.grad is None]
            assert not missing, f"no gradient reaches the student's {missing}"
        else:
            assert any(p.grad is not None and p.grad.any() for p in student.parameters()) or any(
                p.grad is not None for p in method.parameters())
        own_with_grad |= {n for n, p in method.named_parameters() if p.grad is not None}
    assert own_with_grad == {n for n, _ in method.named_parameters()}, "some of the method's parameters never learn"


@pytest.mark.parametrize("name", NAMES)
def test_fused_training_works_or_the_method_says_it_cannot_be_fused(name):
    cls = METHODS.get(name)
    if not cls.fusable:
        pytest.skip(f"{name} declares fusable = False")
    students = [_model(STUDENT, s) for s in (0, 1)]
    teachers = [_model(TEACHER, s) for s in (2, 3)]
    method = _build(name, students[0], teachers[0])
    # What the engine assumes of a fusable method (engine/fused.py feeds logits and optimises the models only).
    assert not (cls.needs.features or cls.needs.indices), "a fusable method reads logits only"
    assert not list(method.parameters()) and not method.init_epochs, "a fusable method owns no modules or stage"
    x, y, idx = _data()  # one batch per model, as the engine stacks them: (N, B, …)
    xs, ys, idxs = torch.stack([x, x.flip(0)]), torch.stack([y, y.flip(0)]), torch.stack([idx, idx.flip(0)])
    with torch.no_grad():
        t_logits = torch.stack([t(xi).logits[None] for t, xi in zip(teachers, xs, strict=True)])  # (N, 1, B, K)
    state = TrainState(0, 2, "main")
    base = copy.deepcopy(students[0]).to("meta")
    params, buffers = stack_module_state(students)
    params = {k: v.detach().requires_grad_() for k, v in params.items()}

    def one(p, b, x, y, idx, t):
        out = functional_call(base, (p, b), (x,))
        return method(Batch(x, y, idx), out, TeacherOutput(t) if cls.needs.teacher else None, state)

    fused = torch.vmap(one, in_dims=0, randomness="error")(params, buffers, xs, ys, idxs, t_logits)
    loss = sum(fused.values()).sum()
    loss.backward()
    assert all(p.grad is not None for p in params.values())
    if loss.item() != 0.0:  # `untrained` (the representation floor) has a zero loss by design: no gradient
        assert all(p.grad.abs().sum() > 0 for p in params.values())
    for i, s in enumerate(students):
        t = TeacherOutput(t_logits[i]) if cls.needs.teacher else None
        alone = method(Batch(xs[i], ys[i], idxs[i]), s(xs[i]), t, state)
        assert set(alone) == set(fused)
        for k, v in alone.items():
            torch.testing.assert_close(fused[k][i], v, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- one engine epoch per declared task

RECIPE = Recipe(epochs=1, batch_size=64).model_dump(mode="json")
T_MODEL = Component("cnn", {"channels": [8, 16], "dropout": 0.0})
S_MODEL = Component("cnn", {"channels": [8, 16], "dropout": 0.0})  # FSP: the teacher's channels
MLP = Component("mlp", {"widths": [16]})
# Per task: its data, teacher and student architectures.
TASK_DATA = {"classification": (Component("digits", {"train_fraction": 0.25}), T_MODEL, S_MODEL),
             # cross-modal transfer's task: the probe on the embedding; the models see every channel here
             "linear_probe": (Component("paired_scenes", {"n_train": 64, "n_probe": 32, "n_val": 16, "n_test": 32}),
                              T_MODEL, S_MODEL),
             "regression": (Component("synthetic_regression", {"n_train": 256, "n_val": 64, "n_test": 64,
                                                                "dim": 8, "targets": 2}), MLP, MLP),
             "video_pose": (Component("stick_figures", {"n_train": 32, "n_val": 8, "n_test": 8, "frames": 2,
                                                        "size": 16}), Component("pose_cnn", {"widths": [8, 8]}),
                            Component("dkd_pose_net", {"init_widths": [8, 8], "widths": [4, 8]})),
             # the corpora inside gensim's wheel (a test dependency), a WordPiece vocabulary trained on them
             "masked_lm": (Component("text_mlm", {"root": "package:gensim/test/test_data", "file": "lee_background.cor",
                                                  "max_documents": 12, "max_length": 12,
                                                  "tokenizer": {"vocab_size": 120}}),
                           Component("hf/masked_lm", {**BERT, "num_layers": 2}),
                           Component("hf/masked_lm", {**BERT, "num_layers": 1})),
             "sequence_classification": (
                 Component("text_classification", {"root": "package:gensim/test/test_data",
                                                    "file": "pang_lee_polarity.cor", "format": "fasttext",
                                                    "encoding": "latin-1", "max_length": 12,
                                                    "tokenizer": {"vocab_size": 120}}),
                 Component("hf/sequence_classification", {**BERT, "num_layers": 2, "vocab_size": 400}),
                 Component("hf/sequence_classification", {**BERT, "num_layers": 1, "vocab_size": 400}))}


def _engine_models(cls, task: str) -> tuple[Component, Component]:
    """(teacher, student) of the engine epoch: the task's, or the pair of the student protocol the method needs."""
    if cls.needs.student is None:
        return TASK_DATA[task][1:]
    return tuple(Component(arch, params) for arch, params in PROTOCOL_PAIRS[cls.needs.student])


@pytest.fixture(scope="module")
def teacher_stores(tmp_path_factory):
    """Per task and teacher architecture: a store holding a trained (one epoch) teacher job, and that job."""
    made = {}

    def get(task, t_model):
        key = (task, t_model.name)
        if key not in made:
            root = tmp_path_factory.mktemp(f"teacher-{task}-{t_model.name.replace('/', '_')}")
            job = Job("teacher", TASK_DATA[task][0], t_model, RECIPE, Component("none", {}), 0)
            run_job(job, Store(root))
            made[key] = (root, job)
        return made[key]

    return get


@pytest.mark.parametrize("name", NAMES)
def test_one_engine_epoch_on_each_declared_task(name, teacher_stores, tmp_path):
    cls = METHODS.get(name)
    assert cls.tasks, f"{name} declares no task"
    for task in cls.tasks:
        assert task in TASK_DATA, f"{name} declares task {task!r}, which this test cannot run yet: add its data"
        overrides = {}
        if getattr(cls.Params(), "init_epochs", 0):
            overrides = {"init_epochs": 1}  # AB, FSP, FT: a 30-epoch initialisation stage by default
        params = cls.Params(**overrides).model_dump(mode="json")
        data = TASK_DATA[task][0]
        t_model, s_model = _engine_models(cls, task)
        if cls.needs.teacher:
            root, teacher = teacher_stores(task, t_model)
            store = Store(root)  # students of different methods have different job ids: one store serves all
            job = Job("student", data, s_model, RECIPE, Component(name, params), 0, None,
                      (Upstream(teacher.job_id, t_model),))
        else:
            store = Store(tmp_path / task)
            job = Job("baseline", data, s_model, RECIPE, Component(name, params), 0)
        final = run_job(job, store)
        primary = TASKS.get(task).primary
        assert final.task == task and math.isfinite(final[f"test_{primary}"]) and final["epochs_trained"] == 1


def test_fusable_declarations_are_what_the_engine_reads():
    assert METHODS.get("dkd").fusable and not METHODS.get("crd").fusable
    for name in NAMES:
        cls = METHODS.get(name)
        if cls.needs.features or cls.needs.indices:
            assert not cls.fusable, f"{name} reads features or indices: it must declare fusable = False"
    kd = Job("baseline", TASK_DATA["classification"][0], S_MODEL, RECIPE, Component("none", {}), 0)
    assert fusable([kd, Job("baseline", kd.dataset, S_MODEL, RECIPE, Component("none", {}), 1)]) is None


def test_declarations_are_checked_when_a_method_registers():
    from kdbench.methods import Method, MethodParams, Needs, register_method

    class Unnamed(Method):
        pass

    class ReadsFeatures(Method):
        name = "test_reads_features_but_fusable"
        needs = Needs(features=("embedding",))

    class StagedParams(MethodParams):
        init_epochs: int = 3

    class Staged(Method):
        name = "test_staged_but_fusable"
        Params = StagedParams

    class NoTask(Method):
        name = "test_no_task"
        tasks = ()

    for cls, message in [(Unnamed, "class attribute `name`"), (ReadsFeatures, "declare `fusable = False`"),
                         (Staged, "declare `fusable = False`"), (NoTask, "lists no task")]:
        with pytest.raises(TypeError, match=message):
            register_method(cls)
        assert getattr(cls, "name", None) not in METHODS
