"""kdbench's FIFO trial scheduler: Tune's order, without scanning every trial on every step."""

from __future__ import annotations

from types import SimpleNamespace

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler

from kdbench.orchestrate.tune_adapters import QueueScheduler


def _controller(trials):
    return SimpleNamespace(get_trials=lambda: trials)


def test_it_chooses_what_tunes_fifo_scheduler_chooses_through_a_suites_life():
    trials = [SimpleNamespace(status=Trial.PENDING, name=f"t{i}") for i in range(5)]
    ours, tunes = QueueScheduler(), FIFOScheduler()
    added = []

    def agree():
        controller = _controller(added)
        assert ours.choose_trial_to_run(controller) is tunes.choose_trial_to_run(controller)

    for t in trials[:3]:
        added.append(t)
        ours.on_trial_add(None, t)
        agree()
    trials[0].status = Trial.RUNNING  # started
    agree()
    trials[1].status = Trial.RUNNING
    trials[2].status = Trial.RUNNING
    agree()  # nothing pending: both None
    assert ours.choose_trial_to_run(_controller(added)) is None
    trials[1].status = Trial.PENDING  # failed, retried: Tune re-adds it (TuneController._requeue_trial)
    added.remove(trials[1])
    added.append(trials[1])
    ours.on_trial_add(None, trials[1])
    agree()
    for t in trials[3:]:
        added.append(t)
        ours.on_trial_add(None, t)
    trials[1].status = Trial.TERMINATED
    trials[0].status = Trial.TERMINATED
    agree()
    assert ours.choose_trial_to_run(_controller(added)) is trials[3]


class _Counted:
    """A trial whose status reads are counted."""

    reads = 0

    def __init__(self, status: str) -> None:
        self._status = status

    @property
    def status(self) -> str:
        _Counted.reads += 1
        return self._status


def test_a_step_reads_no_finished_trial_twice():
    """Tune's scheduler reads every trial's status on every step (O(jobs) per step); this one reads each
    finished trial once in the suite's life, then only the queue's head."""
    sched = QueueScheduler()
    finished = [_Counted(Trial.TERMINATED) for _ in range(10_000)]
    for t in finished:
        sched.on_trial_add(None, t)
    pending = _Counted(Trial.PENDING)
    sched.on_trial_add(None, pending)
    _Counted.reads = 0
    for _ in range(1000):
        assert sched.choose_trial_to_run(None) is pending
    assert _Counted.reads == 10_000 + 1000
