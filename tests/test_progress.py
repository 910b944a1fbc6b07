"""Throttled per-epoch progress: at most one Tune result per interval, every epoch still logged once, in order."""

from __future__ import annotations

import pytest

from kdbench.orchestrate.progress import EPOCHS, INTERVAL_ENV, ThrottledProgress, report_interval

from .conftest import FAULTY_SUITE, write_suite


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_epochs_between_results_ride_in_the_next_one_in_order():
    sent, clock = [], Clock()
    progress = ThrottledProgress(sent.append, interval=5.0, clock=clock)
    for epoch in range(12):  # one epoch per second
        progress({"epoch": epoch, "train_loss": 1.0 / (epoch + 1)})
        clock.now += 1.0
    progress.flush()
    progress.flush()  # nothing left: no empty result
    # The first epoch at once, then a result once 5 s have passed since the previous one, then the rest.
    assert [[e["epoch"] for e in r[EPOCHS]] for r in sent] == [[0], [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11]]
    assert [r["epoch"] for r in sent] == [0, 5, 10, 11]  # a result's own metrics are its last epoch's
    assert sent[1]["train_loss"] == pytest.approx(1 / 6)


def test_zero_interval_reports_every_epoch_and_the_engine_dict_is_not_kept_by_reference():
    sent = []
    progress = ThrottledProgress(sent.append, interval=0.0)
    metrics = {"epoch": 0}
    progress(metrics)
    metrics["epoch"] = 1  # the engine may reuse its dict
    progress(metrics)
    assert [r[EPOCHS] for r in sent] == [[{"epoch": 0}], [{"epoch": 1}]]


def test_the_interval_comes_from_the_environment_and_bad_values_are_named(monkeypatch):
    monkeypatch.delenv(INTERVAL_ENV, raising=False)
    assert report_interval() == 5.0
    monkeypatch.setenv(INTERVAL_ENV, "0.5")
    assert report_interval() == 0.5
    for bad in ("soon", "-1"):
        monkeypatch.setenv(INTERVAL_ENV, bad)
        with pytest.raises(ValueError, match=INTERVAL_ENV):
            report_interval()


def test_the_recording_callback_logs_every_epoch_of_a_batched_result():
    from kdbench.orchestrate.tune_adapters import RecordingCallback

    logged = []

    class Run:
        def epoch(self, job_id, metrics, step):
            logged.append((job_id, step, metrics))

    class Trial:
        config = {"job_id": "j1"}

    callback = RecordingCallback(Run())
    epochs = [{"epoch": 0, "train_loss": 2.0, "lr": 0.1}, {"epoch": 1, "train_loss": 1.5, "lr": 0.05}]
    callback.on_trial_result(0, [], Trial(), {**epochs[-1], EPOCHS: epochs, "training_iteration": 1, "done": False})
    callback.on_trial_result(0, [], Trial(), {"kdbench_status": "ok", "kdbench_final": {}})  # no progress in it
    assert logged == [("j1", 0, {"train_loss": 2.0, "lr": 0.1}), ("j1", 1, {"train_loss": 1.5, "lr": 0.05})]


# A method whose loss turns NaN in epoch 3 of 4.
NAN_SUITE = FAULTY_SUITE.replace("epochs: 2", "epochs: 4").replace(
    "[kd, test_raise_in_loss, test_out_of_memory]", "[test_nan_after_two_epochs]")


def test_a_job_that_fails_reports_the_epochs_it_finished_before_its_failure(tmp_path, monkeypatch):
    """A diverging job's history matters most: the epochs held back by the throttle are sent before the failure."""
    from types import SimpleNamespace

    import torch

    from kdbench.engine import run_job
    from kdbench.orchestrate import trainable
    from kdbench.store import Store
    from kdbench.suite import expand, load_suite
    from kdbench.suite.plugins import import_plugins

    import_plugins(["tests.faulty_plugin"])
    plan = expand(load_suite(str(write_suite(tmp_path, NAN_SUITE))))
    store = Store(str(tmp_path / "store"))
    run_job(next(e.job for e in plan.entries if e.job.kind == "teacher"), store)
    student = next(e.job for e in plan.entries if e.job.method.name == "test_nan_after_two_epochs")
    sent: list[dict] = []
    monkeypatch.setattr(trainable, "tune", SimpleNamespace(report=sent.append))
    monkeypatch.setattr(trainable, "record_placement", lambda store, job_id: None)  # no Ray here
    threads = torch.get_num_threads()
    try:
        trainable.train_job({"job": student.to_dict(), "store": store.uri, "cpus": 1, "gpus": 0,
                             "plugins": ["tests.faulty_plugin"], "report_interval": 3600.0})
    finally:
        torch.set_num_threads(threads)
    assert [[e["epoch"] for e in r[EPOCHS]] for r in sent[:-1]] == [[1], [2]]  # at once, then before the failure
    assert sent[-1]["kdbench_status"] == "failed" and "non-finite" in sent[-1]["kdbench_error"]


def test_the_progress_line_shows_running_jobs_teachers_first_and_an_eta_from_finished_epochs(tmp_path, monkeypatch):
    import io

    from rich.console import Console

    from kdbench.display import SuiteProgress, duration
    from kdbench.orchestrate import state
    from kdbench.store import Store
    from kdbench.suite import expand, load_suite

    from .conftest import TINY_SUITE

    clock = [100.0]
    monkeypatch.setattr(state.time, "monotonic", lambda: clock[0])
    plan = expand(load_suite(str(write_suite(tmp_path, TINY_SUITE))))
    run = state.SuiteRun(plan, Store(tmp_path / "s"), set())
    assert run.epochs_total == 3 * len(plan) and run.eta_seconds() is None  # TINY: 3 epochs per job
    big, mid = (next(e for e in plan.entries if e.job.kind == "teacher" and e.student == n) for n in ("big", "mid"))
    baseline = next(e for e in plan.entries if e.job.kind == "baseline")
    clock[0] = 110.0
    run.epoch(baseline.job_id, {}, 2)
    run.epoch(big.job_id, {}, 1)
    run.epoch(mid.job_id, {}, 3)  # 6 epochs in 10 s
    assert run.eta_seconds() == pytest.approx((run.epochs_total - 6) * 10 / 6)
    labels = [label for label, _, _ in run.running_jobs()]
    assert labels[:2] == ["big s0", "mid s0"] and labels[2] == "none small s0"  # teachers first
    run.finished(mid.job_id, {"task": "classification", "metrics": {"test_acc": 0.5}}, None)
    assert run.epochs_done == 3 and mid.job_id not in run.epochs_at  # its 3 epochs, counted once
    out = io.StringIO()
    with SuiteProgress(Console(file=out, width=300, force_terminal=False)) as progress:
        progress.update(run)
    line = out.getvalue()
    assert "ETA" in line and "big s0 e1/3" in line and "none small s0 e2/3" in line
    assert [duration(s) for s in (45, 720, 11100)] == ["45s", "12m", "3h05m"]
