"""Links into MLflow's UI that open a suite's experiment the way kdbench means it to be read.

MLflow 3's UI opens on its GenAI pages unless asked for the model-training workflow (`workflowType`, which it
otherwise keeps per browser), shows child runs folded under their parent, and sorts by creation time. The
runs view below asks for the training workflow, lists the job runs (tag kdbench.role = job: flat, no parent
to unfold) and sorts them best first by the suite's primary test metric. Its query keys are the ones the UI
itself keeps in its address (`searchFilter`, `orderByKey`, `orderByAsc`, `workflowType`).
"""

from __future__ import annotations

from urllib.parse import quote

RUNS_VIEW_TAG = "kdbench.runs_view"  # the experiment's runs view, as a path to append to the UI's address


def runs_view(experiment_id: str, metric: str, higher_is_better: bool) -> str:
    """`#/experiments/<id>/runs?…`: the job runs, best first by `metric` (e.g. test_acc)."""
    query = {"workflowType": "machine_learning", "searchFilter": "tags.`kdbench.role` = 'job'",
             "orderByKey": f"metrics.`{metric}`", "orderByAsc": "false" if higher_is_better else "true"}
    encoded = "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
    return f"#/experiments/{experiment_id}/runs?{encoded}"
