"""The planner prunes what cannot work, with the reason: feature methods for an ensemble teacher (refused by
the engine's `create_method` itself, not by each method), methods built for other pairs raising `Incompatible`,
and methods whose declared `tasks` leave out the suite's task."""

from __future__ import annotations

import pytest

from kdbench.methods import Incompatible, MethodContext, create_method
from kdbench.suite import expand, load_suite
from kdbench.suite.compat import prune_incompatible

from .conftest import TINY_SUITE, write_suite

OTHER_TASK = '''
import torch.nn.functional as F

from kdbench.methods import Method, Needs, register_method


@register_method
class SegmentationOnly(Method):
    name = "test_segmentation_only"
    needs = Needs(teacher=True)
    tasks = ("segmentation",)

    def forward(self, batch, student, teacher, state):
        return {"ce": F.cross_entropy(student.logits, batch.y)}
'''

FEW_CLASSES = '''
import torch.nn.functional as F

from kdbench.methods import Incompatible, Method, Needs, register_method


@register_method
class ManyClassesOnly(Method):
    name = "test_many_classes_only"
    needs = Needs(teacher=True)

    def __init__(self, params, ctx):
        super().__init__(params, ctx)
        if ctx.num_classes < 10:
            raise Incompatible(f"needs at least 10 classes, the data has {ctx.num_classes}")

    def forward(self, batch, student, teacher, state):
        return {"ce": F.cross_entropy(student.logits, batch.y)}
'''


def test_a_feature_method_is_refused_for_an_ensemble_by_the_engine_and_pruned_by_the_planner(tmp_path):
    with pytest.raises(Incompatible, match="an ensemble of teachers has none"):
        create_method("pkt", {}, MethodContext(4, 10, {"embedding": (4,)}, {}))
    suite = load_suite(str(write_suite(tmp_path, TINY_SUITE.replace("[none, kd]", "[none, pkt]"))))
    plan, pruned = prune_incompatible(expand(suite))
    ensemble = {p.entry.job_id for p in pruned if p.entry.teacher == "both"}
    assert ensemble and all("ensemble" in p.reason for p in pruned if p.entry.teacher == "both")
    assert any(e.job.method.name == "pkt" and e.teacher == "big" for e in plan.entries)  # one teacher: kept


def test_a_method_whose_tasks_leave_out_the_suites_is_pruned(tmp_path):
    (tmp_path / "other_task.py").write_text(OTHER_TASK)
    text = TINY_SUITE.replace("[none, kd]", "[none, kd, test_segmentation_only]") + "plugins: [other_task]\n"
    plan, pruned = prune_incompatible(expand(load_suite(str(write_suite(tmp_path, text)))))
    gone = [p for p in pruned if p.entry.job.method.name == "test_segmentation_only"]
    assert gone and len(gone) == sum(1 for p in pruned)
    assert "supports the tasks segmentation, not classification" in gone[0].describe()
    assert not any(e.job.method.name == "test_segmentation_only" for e in plan.entries)


def test_a_logit_method_raising_incompatible_is_pruned_with_its_reason(tmp_path):
    (tmp_path / "few_classes.py").write_text(FEW_CLASSES)
    text = TINY_SUITE.replace("[none, kd]", "[none, kd, test_many_classes_only]") + "plugins: [few_classes]\n"
    plan, pruned = prune_incompatible(expand(load_suite(str(write_suite(tmp_path, text)))))
    assert pruned and {p.entry.job.method.name for p in pruned} == {"test_many_classes_only"}
    assert "needs at least 10 classes, the data has 4" in pruned[0].describe()
