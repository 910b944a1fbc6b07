"""Loading a suite: YAML → structure (pydantic) → components (registries) → cross-references.

Every problem becomes one SpecError naming the file, line and field, before anything runs.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import BaseModel, ValidationError

from kdbench.jobs import Component, Recipe, canonical_json
from kdbench.methods import METHODS
from kdbench.registry import Registry, suggest
from kdbench.tasks import task_of
from kdbench.zoo.datasets import DATASETS
from kdbench.zoo.models import ARCHS
from kdbench.zoo.models.base import INPUT_CHANNELS

from . import guards, protocol
from .errors import Loc, SpecError
from .finetune import FinetuneDef, finetune_jobs, load_finetune
from .limits import MAX_INPUT_VALUES, MAX_INT, MAX_MODEL_PARAMS, MAX_SAMPLES, PLAN_LIMIT_ENV, max_jobs
from .messages import line_of, spec_error
from .plugins import component_code, resolve_plugins
from .schema import ModelEntry, Resources, SuiteFile, TeacherEntry
from .weights_fit import weights_misfit
from .yamlsrc import load_yaml


@dataclass(frozen=True)
class ModelDef:
    name: str
    model: Component
    recipe: Recipe  # the suite's recipe with this model's changes applied
    seed: int = 0  # teachers only: students take the suite's seeds
    stop_epoch: int | None = None  # teachers only
    snapshots: tuple[int, ...] = ()  # teachers only: `stop_epochs`, sources named `<name>@<epoch>`
    weights: str | None = None  # teachers only: a weights file taken as is (absolute path)
    weights_sha256: str | None = None  # its content, which the teacher's job id covers (not its path)


@dataclass(frozen=True)
class EnsembleDef:
    name: str
    members: tuple[str, ...]
    combine: str


@dataclass(frozen=True)
class Suite:
    path: str
    name: str
    version: int
    description: str
    dataset: Component
    recipe: Recipe
    teachers: tuple[ModelDef, ...]
    students: tuple[ModelDef, ...]
    ensembles: tuple[EnsembleDef, ...]
    methods: tuple[Component, ...]
    chains: tuple[tuple[str, ...], ...]
    pairs: tuple[tuple[str, str], ...] | None
    seeds: tuple[int, ...]
    resources: Resources
    retries: int
    plugins: tuple[str, ...] = ()  # module names, or absolute paths of plugin files (`plugin_location`)
    reference: str | None = None  # absolute path of the published-numbers CSV
    teacher_inference: dict[str, Any] | None = None  # `teacher_inference` (None: plain PyTorch, fp32)
    teacher_cache: dict[str, Any] | None = None  # `teacher_cache` (None: its defaults)
    search: SearchDef | None = None  # `search`: a hyperparameter search per cell
    warnings: tuple[str, ...] = ()  # what is valid but probably not meant (file:line: field: why), shown
    protocol: str = "validation"  # `protocol`: validation or paper (suite/protocol.py)
    # `pair_params`: (teacher, student, method) -> the method's full hyperparameters for that pair
    pair_params: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    finetune: FinetuneDef | None = None  # `finetune:`: the downstream stage (suite/finetune.py)


@dataclass(frozen=True)
class SearchDef:
    """A validated `search:` (kdbench/orchestrate/search.py runs it)."""

    method: str
    space: tuple[tuple[str, str, tuple], ...]  # (hyperparameter, distribution, its arguments), sorted by name
    params: dict[str, Any]  # the method's fixed hyperparameters (not searched), as given
    trials: int
    metric: str  # `val_<metric>` of the dataset's task
    maximize: bool  # the metric's direction
    scheduler: str
    grace_epochs: int
    seed: int
    pairs: tuple[tuple[str, str], ...]  # the cells: [teacher or ensemble, student]


class _Checker:
    def __init__(self, path: str, lines: dict[Loc, int]) -> None:
        self.path, self.lines = path, lines

    def fail(self, loc: Loc, message: str) -> SpecError:
        return SpecError(self.path, line_of(self.lines, loc), loc, message)

    def params(self, model: type[BaseModel], data: dict, loc: Loc, extra_names: list[str] = ()) -> dict:
        """Validated parameters with defaults filled in, as plain JSON-able values."""
        found = guards.big_int(data, loc)
        if found:
            raise self.fail(found[0], f"must be <= {MAX_INT:,} in absolute value (got {found[1]:.3g})")
        return self.typed(model, data, loc, extra_names).model_dump(mode="json")

    def typed(self, model: type[BaseModel], data: dict, loc: Loc, extra_names: list[str] = ()) -> BaseModel:
        """`data` validated as `model` (defaults filled in)."""
        try:
            return guards.strict(model, data)
        except ValidationError as e:
            raise spec_error(e, self.path, self.lines, loc, model, list(extra_names)) from None

    def name_in(self, registry: Registry, name: str, loc: Loc) -> None:
        if name not in registry:
            raise self.fail(loc, registry.unknown(name))


def load_suite(path: str) -> Suite:
    data, lines = load_yaml(path)
    check = _Checker(path, lines)
    try:
        raw = guards.strict(SuiteFile, data)
    except ValidationError as e:
        raise spec_error(e, path, lines, (), SuiteFile) from None
    plugins = resolve_plugins(check, raw.plugins, path)
    dataset = _dataset(check, raw)
    recipe = raw.recipe
    if raw.protocol == protocol.PAPER:  # the whole training set, the last epoch (suite/protocol.py)
        dataset = protocol.paper_dataset(check, dataset)
        recipe = protocol.paper_recipe(check, recipe, data.get("recipe"), ("recipe",))
    teachers = tuple(_model(check, e, ("teachers", i), recipe, True) for i, e in enumerate(raw.teachers))
    for i, t in enumerate(teachers):  # a weights file that does not fit its architecture: one line, now
        if t.weights and (problem := weights_misfit(t.weights, t.model, dataset)):
            raise check.fail(("teachers", i, "weights"), f"{t.weights}: {problem}")
    students = tuple(_model(check, e, ("students", i), recipe, False) for i, e in enumerate(raw.students))
    if raw.protocol == protocol.PAPER:  # a model's own recipe changes keep the protocol too
        teachers = tuple(replace(m, recipe=protocol.paper_recipe(check, m.recipe, e.recipe, ("teachers", i, "recipe")))
                         for i, (m, e) in enumerate(zip(teachers, raw.teachers, strict=True)))
        students = tuple(replace(m, recipe=protocol.paper_recipe(check, m.recipe, e.recipe, ("students", i, "recipe")))
                         for i, (m, e) in enumerate(zip(students, raw.students, strict=True)))
    _model_sizes(check, dataset, teachers, students)
    for i, t in enumerate(teachers):
        if t.stop_epoch is not None and t.stop_epoch > t.recipe.epochs:
            raise check.fail(("teachers", i, "stop_epoch"), f"must be <= recipe.epochs ({t.recipe.epochs})")
        _snapshots(check, t, ("teachers", i, "stop_epochs"))
    _unique_names(check, raw)
    ensembles = _ensembles(check, raw, {t.name for t in teachers})
    methods = _methods(check, raw.methods)
    _method_epochs(check, methods, students)
    warnings = _schedule_warnings(check, methods, students)
    _seeds(check, raw.seeds)
    chains = _chains(check, raw, teachers, students, ensembles)
    pairs = _pairs(check, raw, teachers, students, ensembles)
    reference = _reference(check, path, raw.reference)
    distills = any(METHODS.get(m.name).needs.teacher for m in methods)
    if distills and not (teachers or ensembles):
        raise check.fail(("methods",), "distillation methods need a teacher: add `teachers:`")
    if chains and not distills:
        raise check.fail(("chains",), "chains need a distillation method (e.g. `kd`) in `methods:`")
    search = _search(check, raw, teachers, students, ensembles, pairs, recipe)
    if search is not None and raw.protocol == protocol.PAPER:
        raise check.fail(("search",), "a search selects on the validation split, which protocol paper does not "
                                      "hold out: use protocol validation for searches")
    per_pair = protocol.pair_params(check, raw, methods, source_names(teachers, ensembles),
                                    [m.name for m in students], pairs)
    finetune = load_finetune(check, raw, teachers, students)
    _plan_size(check, raw, teachers, students, ensembles, methods, chains, pairs, search, finetune)
    return Suite(path, raw.name, raw.version, raw.description, dataset, recipe,
                 teachers, students, ensembles, methods, chains, pairs, tuple(raw.seeds), raw.resources, raw.retries,
                 plugins, reference, raw.teacher_inference.model_dump(mode="json"),
                 raw.teacher_cache.model_dump(mode="json"), search, warnings, raw.protocol, per_pair, finetune)


def _dataset(check: _Checker, raw: SuiteFile) -> Component:
    name = raw.dataset.name
    check.name_in(DATASETS, name, ("dataset", "name"))
    params = check.params(DATASETS.get(name).params, dict(raw.dataset.model_extra), ("dataset",), ["name"])
    return Component(name, params, component_code("dataset", name))


def _model(check: _Checker, entry: ModelEntry, loc: Loc, recipe: Recipe, teacher: bool) -> ModelDef:
    check.name_in(ARCHS, entry.arch, loc + ("arch",))
    own = list((TeacherEntry if teacher else ModelEntry).model_fields)
    params = check.params(ARCHS.get(entry.arch).params, dict(entry.model_extra), loc, own)
    if entry.input_channels is not None:  # every architecture's parameter; absent by default (ids unchanged)
        params[INPUT_CHANNELS] = list(entry.input_channels)
    model = Component(entry.arch, params, component_code("model", entry.arch))
    if entry.recipe:
        recipe = check.typed(Recipe, _merge(recipe.model_dump(mode="json"), entry.recipe), loc + ("recipe",))
    if teacher:
        return ModelDef(entry.name, model, recipe, entry.seed, entry.stop_epoch, tuple(entry.stop_epochs),
                        *_weights(check, entry, loc))
    return ModelDef(entry.name, model, recipe)


def _weights(check: _Checker, entry: TeacherEntry, loc: Loc) -> tuple[str | None, str | None]:
    """A teacher's `weights:` file, relative to the suite: its absolute path and SHA-256."""
    if entry.weights is None:
        return None, None
    if entry.stop_epoch is not None or entry.stop_epochs:
        raise check.fail(loc + ("weights",), "a teacher from a weights file is not trained: no stop_epoch(s)")
    path = os.path.join(os.path.dirname(os.path.abspath(check.path)), entry.weights)
    if not os.path.isfile(path):
        raise check.fail(loc + ("weights",), f"file not found: {path}")
    problem = guards.weights_file(path)
    if problem:
        raise check.fail(loc + ("weights",), f"{path}: {problem}")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return path, digest.hexdigest()


def _snapshots(check: _Checker, t: ModelDef, loc: Loc) -> None:
    """`stop_epochs`: distinct epochs within the teacher's training (its stop epoch, else its recipe's)."""
    last = t.stop_epoch or t.recipe.epochs
    for j, e in enumerate(t.snapshots):
        if not 0 < e <= last:
            raise check.fail(loc + (j,), f"must be in 1..{last} (the teacher's last epoch)")
        if e in t.snapshots[:j]:
            raise check.fail(loc + (j,), f"epoch {e} is listed twice")


def snapshot_name(teacher: str, epoch: int) -> str:
    """The source name of a teacher's snapshot: students of `big@10` learn from `big` after epoch 10."""
    return f"{teacher}@{epoch}"


def source_names(teachers, ensembles) -> list[str]:
    """Everything a student can learn from: teachers, their snapshots, ensembles."""
    names = [m.name for m in teachers]
    names += [snapshot_name(m.name, e) for m in teachers for e in m.snapshots]
    return names + [e.name for e in ensembles]


def _merge(base: dict, changes: dict) -> dict:
    """`base` with `changes` applied, nested mappings merged key by key."""
    out = dict(base)
    for k, v in changes.items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def _unique_names(check: _Checker, raw: SuiteFile) -> None:
    seen: dict[str, Loc] = {}
    for group in ("teachers", "students", "ensembles"):
        for i, entry in enumerate(getattr(raw, group)):
            loc = (group, i, "name")
            if entry.name in seen:
                first = line_of(check.lines, seen[entry.name])
                raise check.fail(loc, f"duplicate name '{entry.name}' (first used on line {first})")
            seen[entry.name] = loc


def _ensembles(check: _Checker, raw: SuiteFile, teacher_names: set[str]) -> tuple[EnsembleDef, ...]:
    out = []
    for i, e in enumerate(raw.ensembles):
        for j, member in enumerate(e.members):
            if member not in teacher_names:
                hint = suggest(member, sorted(teacher_names))
                raise check.fail(("ensembles", i, "members", j), f"'{member}' is not a teacher{hint}")
        if len(set(e.members)) != len(e.members):
            raise check.fail(("ensembles", i, "members"), "lists a teacher twice")
        out.append(EnsembleDef(e.name, tuple(e.members), e.combine))
    return tuple(out)


def _methods(check: _Checker, items: list[Any]) -> tuple[Component, ...]:
    out: list[Component] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        if isinstance(item, str):
            name, params, loc = item, {}, ("methods", i)
        elif isinstance(item, dict) and len(item) == 1 and isinstance(next(iter(item.values())), dict | None):
            name, params = next(iter(item.items()))
            params, loc = params or {}, ("methods", i, name)
        else:
            raise check.fail(("methods", i), "a method is a name (`kd`) or a mapping of one name to its "
                             "hyperparameters (`kd: {temperature: 4}`)")
        check.name_in(METHODS, name, loc)
        component = Component(name, check.params(METHODS.get(name).Params, params, loc),
                              component_code("method", name))
        key = canonical_json([component.name, component.params])
        if key in seen:
            raise check.fail(("methods", i), f"method '{name}' with these hyperparameters is listed twice")
        seen.add(key)
        out.append(component)
    return tuple(out)


def _seeds(check: _Checker, seeds: list[int]) -> None:
    seen: set[int] = set()
    for i, s in enumerate(seeds):
        if s in seen:
            raise check.fail(("seeds", i), f"seed {s} is listed twice")
        seen.add(s)


def _chains(check, raw, teachers, students, ensembles) -> tuple[tuple[str, ...], ...]:
    sources = set(source_names(teachers, ensembles))
    models = {m.name for m in teachers} | {m.name for m in students}
    student_names = {m.name for m in students}
    for i, chain in enumerate(raw.chains):
        loc = ("chains", i)
        if len(chain) < 3:
            raise check.fail(loc, "a chain is [teacher, assistant, ..., student]: at least 3 names")
        for j, name in enumerate(chain):
            known = sources | models
            if name not in known:
                raise check.fail(loc + (j,), f"unknown model '{name}'{suggest(name, sorted(known))}")
            if name in chain[:j]:
                raise check.fail(loc + (j,), f"cycle: '{name}' appears twice in the chain")
        if chain[0] not in sources:
            raise check.fail(loc + (0,), f"a chain starts at a teacher or ensemble, not '{chain[0]}'")
        if chain[-1] not in student_names:
            raise check.fail(loc + (len(chain) - 1,), f"a chain ends at a student, not '{chain[-1]}'")
        for j, name in enumerate(chain[1:-1], start=1):
            if name in {e.name for e in ensembles}:
                raise check.fail(loc + (j,), f"an ensemble ('{name}') can only start a chain")
    return tuple(tuple(c) for c in raw.chains)


def _pairs(check, raw, teachers, students, ensembles) -> tuple[tuple[str, str], ...] | None:
    if raw.pairs is None:
        return None
    sources = source_names(teachers, ensembles)
    student_names = [m.name for m in students]
    known_sources, known_students, seen = set(sources), set(student_names), set()
    if not raw.pairs:
        raise check.fail(("pairs",), "must not be empty (leave it out for the full teachers × students grid)")
    for i, pair in enumerate(raw.pairs):
        if len(pair) != 2:
            raise check.fail(("pairs", i), "a pair is [teacher, student]")
        if pair[0] not in known_sources:
            raise check.fail(("pairs", i, 0), f"'{pair[0]}' is not a teacher or ensemble{suggest(pair[0], sources)}")
        if pair[1] not in known_students:
            raise check.fail(("pairs", i, 1), f"'{pair[1]}' is not a student{suggest(pair[1], student_names)}")
        if tuple(pair) in seen:
            raise check.fail(("pairs", i), f"pair {pair} is listed twice")
        seen.add(tuple(pair))
    return tuple((a, b) for a, b in raw.pairs)


_DISTRIBUTIONS = {"uniform": 2, "loguniform": 2, "int": 2, "choice": None}  # name -> number of arguments


def _search(check, raw, teachers, students, ensembles, pairs, recipe) -> SearchDef | None:
    """`search:`: a distillation method, a space over its hyperparameters, a budget, the cells."""
    s = raw.search
    if s is None:
        return None
    check.name_in(METHODS, s.method, ("search", "method"))
    cls = METHODS.get(s.method)
    if not cls.needs.teacher:
        raise check.fail(("search", "method"), f"'{s.method}' learns from labels alone: nothing to search per cell")
    fields = sorted(cls.Params.model_fields)
    space = []
    for name, dist in sorted(s.space.items()):
        loc = ("search", "space", name)
        if name not in fields:
            raise check.fail(loc, f"'{s.method}' has no hyperparameter '{name}'{suggest(name, fields)}")
        if name in s.params:
            raise check.fail(("search", "params", name), f"'{name}' is searched: leave it out of `params`")
        if len(dist) != 1 or next(iter(dist)) not in _DISTRIBUTIONS:
            raise check.fail(loc, f"one distribution: {', '.join(f'{{{d}: [...]}}' for d in _DISTRIBUTIONS)}")
        kind, args = next(iter(dist.items()))
        if _DISTRIBUTIONS[kind] is not None and len(args) != 2:
            raise check.fail(loc + (kind,), f"{kind} takes [low, high]")
        if kind != "choice" and not args[0] < args[1]:
            raise check.fail(loc + (kind,), "needs low < high")
        if kind == "loguniform" and args[0] <= 0:
            raise check.fail(loc + (kind,), "loguniform needs low > 0")
        if kind == "int" and not all(isinstance(a, int) for a in args):
            raise check.fail(loc + (kind,), "int takes whole numbers")
        if kind == "choice" and not args:
            raise check.fail(loc + (kind,), "choice needs at least one value")
        space.append((name, kind, tuple(args)))
    check.params(cls.Params, dict(s.params), ("search", "params"))  # the fixed values alone
    for n, kind, args in space:  # each end of a range, each choice: blamed on itself
        for j, v in enumerate(args):
            _space_value(check, cls.Params, s.params, n, v, ("search", "space", n, kind, j))
    for k in (0, -1):  # the ends together (rules across hyperparameters)
        ends = {n: a[k] for n, _, a in space}
        check.params(cls.Params, {**s.params, **ends}, ("search", "space"))
    if s.grace_epochs > recipe.epochs:
        raise check.fail(("search", "grace_epochs"), f"must be <= recipe.epochs ({recipe.epochs})")
    sources = source_names(teachers, ensembles)
    names = [m.name for m in students]
    cells = s.pairs if s.pairs is not None else (pairs or [(a, b) for a in sources for b in names])
    known_sources, known_names = set(sources), set(names)
    for i, pair in enumerate(cells):
        if len(pair) != 2 or pair[0] not in known_sources or pair[1] not in known_names:
            raise check.fail(("search", "pairs", i), f"{list(pair)} is not a [teacher or ensemble, student] pair")
    seed = raw.seeds[0] if s.seed is None else s.seed
    metric, maximize = _search_metric(check, raw.dataset.name, s.metric)
    return SearchDef(s.method, tuple(space), dict(s.params), s.trials, metric, maximize, s.scheduler, s.grace_epochs,
                     seed, tuple((a, b) for a, b in cells))


def _search_metric(check: _Checker, dataset: str, metric: str | None) -> tuple[str, bool]:
    """`val_<metric>` of the dataset's task (default: its primary metric), and whether higher is better."""
    task = task_of(dataset)
    allowed = {f"val_{m.name}": m for m in task.metrics}
    name = metric or f"val_{task.primary}"
    if name not in allowed:
        raise check.fail(("search", "metric"), f"the {task.name} task has no validation metric '{name}'"
                         f"{suggest(name, sorted(allowed))}; known: {', '.join(sorted(allowed))}")
    return name, allowed[name].higher_is_better


def _space_value(check: _Checker, params: type[BaseModel], fixed: dict, name: str, value: Any, loc: Loc) -> None:
    """One value of a search space, valid for its hyperparameter (with the fixed ones)."""
    try:
        guards.strict(params, {**fixed, name: value})
    except ValidationError as e:
        raise check.fail(loc, spec_error(e, check.path, check.lines, loc, params).message) from None


def _model_sizes(check: _Checker, dataset: Component, teachers, students) -> None:
    """The dataset's inputs and every model, sized without allocating anything: an absurd width or input is
    refused here, before `validate` builds the models for its estimate (or a worker for training)."""
    described = DATASETS.get(dataset.name).params(**dataset.params).describe()
    if described is None:
        return
    shape, classes, n_train = described
    if guards.input_values(shape) > MAX_INPUT_VALUES:
        raise check.fail(("dataset",), f"inputs of shape {tuple(shape)} exceed {MAX_INPUT_VALUES:,} values per sample")
    if n_train > MAX_SAMPLES:
        raise check.fail(("dataset",), f"{n_train:,} training samples exceed {MAX_SAMPLES:,}")
    for group, models in (("teachers", teachers), ("students", students)):
        for i, m in enumerate(models):
            n = guards.model_size(m.model.name, m.model.params, tuple(shape), classes)
            if isinstance(n, str):
                raise check.fail((group, i, "arch"), f"cannot build '{m.model.name}' with these parameters: {n}")
            if guards.too_big(n):
                raise check.fail((group, i), f"'{m.name}' has {n:,} parameters, more than {MAX_MODEL_PARAMS:,}")


def _method_epochs(check: _Checker, methods: tuple[Component, ...], students) -> None:
    """A method's `stop_epoch` lies within the training of every student it is applied to."""
    for i, m in enumerate(methods):
        stop = m.params.get("stop_epoch")
        if not isinstance(stop, int):
            continue
        for s in students:
            if stop > s.recipe.epochs:
                raise check.fail(("methods", i, m.name, "stop_epoch"),
                                 f"must be <= recipe.epochs ({s.recipe.epochs}, student '{s.name}')")


def _schedule_warnings(check: _Checker, methods: tuple[Component, ...], students) -> tuple[str, ...]:
    """Methods whose own schedule does not fit a student's recipe (`Method.schedule_warning`), once per method."""
    out = []
    for i, m in enumerate(methods):
        cls = METHODS.get(m.name)
        for epochs in sorted({s.recipe.epochs for s in students}):
            why = cls.schedule_warning(cls.Params(**m.params), epochs)
            if why:
                out.append(str(check.fail(("methods", i, m.name), why)))
                break
    return tuple(out)


def _plan_size(check: _Checker, raw: SuiteFile, teachers, students, ensembles, methods, chains, pairs,
               search, finetune: FinetuneDef | None = None) -> None:
    """An upper bound of the plan's job count, by arithmetic, within the limit (KDBENCH_MAX_JOBS)."""
    seeds = len(raw.seeds)
    distill = sum(1 for m in methods if METHODS.get(m.name).needs.teacher)
    n_sources = len(source_names(teachers, ensembles))
    cells = len(pairs) if pairs is not None else n_sources * len(students)
    links = sum(len(c) - 1 for c in chains)
    searched = len(search.pairs) * (search.trials + seeds) if search else 0
    # teachers, their output jobs (at most one per teacher and student seed), baselines, students, chains, search
    total = (len(teachers) * (1 + seeds) + len(students) * seeds + cells * distill * seeds
             + links * distill * seeds + searched)
    total += finetune_jobs(total, finetune)  # each trained job, fine-tuned per task and seed
    limit = max_jobs()
    if total > limit:
        factors = {("seeds",): seeds, ("students",): len(students), ("teachers",): len(teachers),
                   ("methods",): len(methods)}
        loc = max(factors, key=factors.get)
        raise check.fail(loc, f"the plan would have up to {total:,} jobs, more than the limit of {limit:,} "
                         f"(set {PLAN_LIMIT_ENV} to raise it)")


def _reference(check: _Checker, path: str, ref: str | None) -> str | None:
    """The reference CSV, relative to the suite file; it must exist."""
    if ref is None:
        return None
    full = os.path.join(os.path.dirname(os.path.abspath(path)), ref)
    if not os.path.isfile(full):
        raise check.fail(("reference",), f"file not found: {full}")
    problem = guards.reference_file(full)
    if problem:
        raise check.fail(("reference",), f"{full}: {problem}")
    return full
