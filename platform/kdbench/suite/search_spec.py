"""A suite's `search:` block checked: a distillation method, distributions over its hyperparameters (each end of
a range valid for the method, blamed on itself), a budget, the metric of the dataset's task, and the cells."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from kdbench.jobs import Recipe
from kdbench.methods import METHODS
from kdbench.registry import suggest
from kdbench.tasks import task_of

from . import guards
from .errors import Loc
from .messages import spec_error
from .schema import SuiteFile


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


_DISTRIBUTIONS = {"uniform": 2, "loguniform": 2, "int": 2, "choice": None}  # name -> number of arguments


def load_search(check, raw: SuiteFile, sources: list[str], students, pairs, recipe: Recipe) -> SearchDef | None:
    """`search:`: a distillation method, a space over its hyperparameters, a budget, the cells (`sources`: the
    teachers' and ensembles' names)."""
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


def _search_metric(check, dataset: str, metric: str | None) -> tuple[str, bool]:
    """`val_<metric>` of the dataset's task (default: its primary metric), and whether higher is better."""
    task = task_of(dataset)
    allowed = {f"val_{m.name}": m for m in task.metrics}
    name = metric or f"val_{task.primary}"
    if name not in allowed:
        raise check.fail(("search", "metric"), f"the {task.name} task has no validation metric '{name}'"
                         f"{suggest(name, sorted(allowed))}; known: {', '.join(sorted(allowed))}")
    return name, allowed[name].higher_is_better


def _space_value(check, params: type[BaseModel], fixed: dict, name: str, value: Any, loc: Loc) -> None:
    """One value of a search space, valid for its hyperparameter (with the fixed ones)."""
    try:
        guards.strict(params, {**fixed, name: value})
    except ValidationError as e:
        raise check.fail(loc, spec_error(e, check.path, check.lines, loc, params).message) from None
