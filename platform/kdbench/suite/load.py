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
from kdbench.zoo.datasets import DATASETS
from kdbench.zoo.models import ARCHS
from kdbench.zoo.models.base import INPUT_CHANNELS

from . import bounds, guards, protocol
from .errors import Loc, SpecError
from .finetune import FinetuneDef, load_finetune
from .limits import MAX_INT
from .messages import line_of, spec_error
from .plugins import component_code, resolve_plugins
from .schema import ModelEntry, Resources, SuiteFile, TeacherEntry
from .search_spec import SearchDef, load_search
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
    bounds.model_sizes(check, dataset, teachers, students)
    for i, t in enumerate(teachers):
        if t.stop_epoch is not None and t.stop_epoch > t.recipe.epochs:
            raise check.fail(("teachers", i, "stop_epoch"), f"must be <= recipe.epochs ({t.recipe.epochs})")
        _snapshots(check, t, ("teachers", i, "stop_epochs"))
    _unique_names(check, raw)
    ensembles = _ensembles(check, raw, {t.name for t in teachers})
    methods = _methods(check, raw.methods)
    bounds.method_epochs(check, methods, students)
    warnings = bounds.schedule_warnings(check, methods, students)
    _seeds(check, raw.seeds)
    chains = _chains(check, raw, teachers, students, ensembles)
    pairs = _pairs(check, raw, teachers, students, ensembles)
    reference = _reference(check, path, raw.reference)
    distills = any(METHODS.get(m.name).needs.teacher for m in methods)
    if distills and not (teachers or ensembles):
        raise check.fail(("methods",), "distillation methods need a teacher: add `teachers:`")
    if chains and not distills:
        raise check.fail(("chains",), "chains need a distillation method (e.g. `kd`) in `methods:`")
    search = load_search(check, raw, source_names(teachers, ensembles), students, pairs, recipe)
    if search is not None and raw.protocol == protocol.PAPER:
        raise check.fail(("search",), "a search selects on the validation split, which protocol paper does not "
                                      "hold out: use protocol validation for searches")
    per_pair = protocol.pair_params(check, raw, methods, source_names(teachers, ensembles),
                                    [m.name for m in students], pairs)
    finetune = load_finetune(check, raw, teachers, students)
    bounds.plan_size(check, raw, teachers, students, len(source_names(teachers, ensembles)), methods, chains, pairs,
                     search, finetune)
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
