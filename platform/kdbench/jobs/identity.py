"""A job's identity: the one function that turns a job into the JSON its id is the hash of.

The identity holds everything that determines a job's result — kind, dataset and its parameters (not where
its files are), model, recipe, method and its hyperparameters (defaults filled in), seed, stop epoch, the
upstream jobs, the engine's semantics version, and for a component defined by a plugin the digest of its
source (`Component.code`) — and nothing else (names, resources and the suite are not in
it: equal ids mean equal work).

Fields added after ids were first computed would change every existing id if they entered the identity
with their default. `LATER_DEFAULTS` lists each such field once, with its default: a field that holds its
default is left out, so jobs planned before it existed keep their ids (tests/fixtures/job_ids.json holds
the ids of every benchmark suite and guards this). Add a row here when you add a field that changes what a
job computes; never change a row.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kdbench.version import JOB_SEMANTICS

if TYPE_CHECKING:
    from .job import Job

ID_LENGTH = 20  # hex characters: 80 bits, collision-free for any plausible store
LOCATION_PARAMS = frozenset({"root"})  # dataset parameters that say where the files are, not what they hold


@dataclass(frozen=True)
class LaterDefault:
    """`path` in the identity (under a component named `component`, when given) left out while it equals
    `default`."""

    path: tuple[str, ...]
    default: Any
    added: str  # what added it, for the reader
    component: str | None = None


LATER_DEFAULTS: tuple[LaterDefault, ...] = (
    LaterDefault(("recipe", "precision"), "fp32", "mixed-precision training"),
    LaterDefault(("recipe", "channels_last"), False, "channels-last memory format"),
    LaterDefault(("recipe", "augment"), True, "training a model without the dataset's augmentation"),
    LaterDefault(("model", "params", "input_dropout"), 0.0, "input dropout (Hinton et al.'s MNIST teacher)", "mlp"),
    LaterDefault(("method", "params", "stop_epoch"), None, "early-stopped KD (ESKD)", "kd"),
    LaterDefault(("snapshots",), [], "teacher snapshots (early-stopped teachers from one run)"),
    LaterDefault(("teacher_outputs",), None, "replayed or reduced teacher-output caches"),
    LaterDefault(("teacher_inference",), None, "the teacher inference engine (DeepSpeed, dtype)"),
    LaterDefault(("method", "params", "tail"), "uniform", "lumped top-k teacher caches (vocabulary outputs)",
                 "teacher_outputs"),
    LaterDefault(("method", "params", "temperature"), None, "the temperature of a lumped top-k teacher cache",
                 "teacher_outputs"),
    LaterDefault(("model", "params", "input_channels"), None, "a model's input view (cross-modal transfer)"),
    LaterDefault(("method", "params", "negatives"), "class", "CRD's negatives drawn without labels", "crd"),
    LaterDefault(("method", "params", "replacement"), True, "CRD's negatives drawn without replacement", "crd"),
    LaterDefault(("dataset", "params", "columns"), None, "headerless TSV files (GLUE's CoLA)", "text_mlm"),
    LaterDefault(("dataset", "params", "columns"), None, "headerless TSV files (GLUE's CoLA)", "text_classification"),
    LaterDefault(("start",), None, "fine-tune jobs (the job whose weights a fine-tuning starts from)"),
    LaterDefault(("dataset", "params", "tokenizer", "corpus"), None, "a vocabulary trained on a named corpus",
                 "text_mlm"),
    LaterDefault(("dataset", "params", "tokenizer", "corpus"), None, "a vocabulary trained on a named corpus",
                 "text_classification"),
)

# A teacher-output job's recipe is what its views depend on, not a training recipe.
OUTPUTS_RECIPE = ("epochs", "batch_size", "precision", "channels_last", "augment")


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def job_id_of(identity: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(identity).encode()).hexdigest()[:ID_LENGTH]


def identity(job: Job) -> dict[str, Any]:
    full = {
        "kind": job.kind,
        # Where the data lives is not what it is: the same dataset under two paths is one job.
        "dataset": {"name": job.dataset.name,
                    "params": {k: v for k, v in job.dataset.params.items() if k not in LOCATION_PARAMS},
                    **_code(job.dataset)},
        "model": {"name": job.model.name, "params": dict(job.model.params), **_code(job.model)},
        "recipe": _recipe(job),
        "method": {"name": job.method.name, "params": dict(job.method.params), **_code(job.method)},
        "seed": job.seed,
        "stop_epoch": job.stop_epoch,
        # An ensemble's mean does not depend on member order; a single teacher is a list of one.
        "upstream": sorted(t.ref for t in job.teachers),
        "combine": job.combine,
        "semantics": JOB_SEMANTICS,
        "snapshots": sorted(job.snapshots),
        "teacher_outputs": job.replay,
        "teacher_inference": job.teacher_inference,
        "start": None if job.start is None else job.start.ref,  # a fine-tune job's upstream (its starting weights)
    }
    for later in LATER_DEFAULTS:
        _drop_default(full, later)
    return full


def _code(component) -> dict[str, str]:
    """A plugin component's source digest (absent for kdbench's own components: ids stay as they were)."""
    return {"code": component.code} if component.code else {}


def _recipe(job: Job) -> dict[str, Any]:
    if job.recipe is None:  # a pretrained teacher: nothing is trained
        return {"epochs": 0}
    dump = job.recipe.model_dump(mode="json")
    return {k: dump[k] for k in OUTPUTS_RECIPE} if job.kind == "teacher_outputs" else dump


def _drop_default(identity: dict[str, Any], later: LaterDefault) -> None:
    *parents, key = later.path
    if later.component is not None and identity[parents[0]]["name"] != later.component:
        return
    node = identity
    for p in parents:
        if not isinstance(node, dict) or p not in node:
            return
        node = node[p]
    if key in node and node[key] == later.default:
        del node[key]
