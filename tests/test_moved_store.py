"""A store copied or moved elsewhere keeps working with its embedded MLflow: the runs' artifact paths follow
the store (MLflow records absolute paths), so the leaderboard artifacts open from the new place."""

from __future__ import annotations

import shutil

from kdbench.results import result_row, write_plan, write_result
from kdbench.store import Store
from kdbench.suite import expand, load_suite
from kdbench.track import Tracker, resolve

from .conftest import TINY_SUITE, write_suite
from .test_store_faults import cli


def test_a_moved_store_s_mlflow_artifacts_follow_it(tmp_path):
    import mlflow

    from kdbench.track import embedded_tracking_uri

    plan = expand(load_suite(str(write_suite(tmp_path, TINY_SUITE))))
    old = Store(tmp_path / "old")
    write_plan(old, plan)
    for e in plan.entries:
        write_result(old, result_row(e, "tiny", {"test_acc": 0.5, "val_acc": 0.5}, attempt=1))
    uri, artifacts = resolve(old, None)
    tracker = Tracker(uri, "kdbench/tiny", artifacts)
    tracker.start_suite("tiny", {}, {"kdbench.suite": "tiny"})
    tracker.log_parent(artifacts={"leaderboard/board.md": b"# the board"})
    assert tracker.close(timeout=120)
    shutil.move(tmp_path / "old", tmp_path / "new")  # the old folder is gone
    new = Store(tmp_path / "new")

    got = cli("sync", "tiny", "--store", new.uri)  # any command that opens the embedded MLflow
    assert got.returncode == 0, got.stderr[-3000:]
    client = mlflow.MlflowClient(embedded_tracking_uri(new))
    exp = client.get_experiment_by_name("kdbench/tiny")
    assert (tmp_path / "new").as_uri() in exp.artifact_location
    runs = client.search_runs([exp.experiment_id])
    assert runs and all(r.info.artifact_uri.startswith((tmp_path / "new").as_uri()) for r in runs)
    parent = next(r for r in runs if r.data.tags.get("kdbench.role") == "parent")
    path = client.download_artifacts(parent.info.run_id, "leaderboard/board.md", str(tmp_path))
    assert open(path, "rb").read() == b"# the board"
    assert not (tmp_path / "old").exists()
