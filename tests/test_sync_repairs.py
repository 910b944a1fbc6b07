"""`kdbench sync` makes every MLflow run equal to the store, ended runs included: a run left FAILED by an
attempt whose successful rerun MLflow never heard of becomes FINISHED with the rerun's metrics, and a run
that missed epochs gets them."""

from __future__ import annotations

import sqlite3

import pytest

from kdbench.results import read_results
from kdbench.store import Store

from .conftest import write_suite
from .faults import finish, kdbench

SUITE = """\
name: synced
dataset: {name: synthetic, n_train: 256, n_val: 64, n_test: 128, dim: 8, num_classes: 3}
recipe: {epochs: 4, batch_size: 64}
teachers: [{name: big, arch: mlp, widths: [32]}]
students: [{name: small, arch: mlp, widths: [4]}]
methods: [kd]
seeds: [0]
"""


@pytest.mark.ray  # `kdbench run` and `kdbench sync` in subprocesses
def test_sync_updates_ended_runs_to_match_the_store(tmp_path):
    import mlflow

    from kdbench.track import embedded_tracking_uri

    path = write_suite(tmp_path, SUITE)
    store = Store(tmp_path / "store")
    rc, out, err = finish(kdbench("run", str(path), "--store", store.uri, "--num-cpus", "1", "-q",
                                  logs=tmp_path / "run"), 300)
    assert rc == 0, err[-3000:]
    rows = {r["job_id"]: r for r in read_results(store).to_pylist()}
    client = mlflow.MlflowClient(embedded_tracking_uri(store))
    exp = client.get_experiment_by_name("kdbench/synced")

    def runs():
        return {r.data.tags["kdbench.job_id"]: r for r in client.search_runs([exp.experiment_id])
                if "kdbench.job_id" in r.data.tags}

    failed_job, gappy_job = sorted(rows)[:2]
    # What MLflow holds when a job's first attempt failed and its rerun succeeded while MLflow was unreachable:
    run = runs()[failed_job]
    client.set_tag(run.info.run_id, "kdbench.error", "RuntimeError: the first attempt failed")
    client.log_metric(run.info.run_id, "test_acc", 0.0, step=0)
    client.set_terminated(run.info.run_id, "FAILED")
    # … and when a run missed epochs 2 and 3 (its driver could not reach MLflow then).
    gappy = runs()[gappy_job].info.run_id
    db = store.path("mlflow", "mlflow.db")
    with sqlite3.connect(db) as con:
        assert con.execute("DELETE FROM metrics WHERE run_uuid = ? AND step IN (2, 3)", (gappy,)).rowcount > 0
    assert {m.step for m in client.get_metric_history(gappy, "train_loss")} == {1, 4}

    rc, out, err = finish(kdbench("sync", "synced", "--store", store.uri, logs=tmp_path / "sync"), 120)
    assert rc == 0, err[-3000:]
    now = runs()
    assert sorted(now) == sorted(rows)  # still one run per job
    for job, row in rows.items():
        r = now[job]
        assert r.info.status == "FINISHED" and "kdbench.error" not in r.data.tags
        assert r.data.metrics["test_acc"] == pytest.approx(row["test_acc"])
        assert {m.step for m in client.get_metric_history(r.info.run_id, "train_loss")} == {1, 2, 3, 4}
