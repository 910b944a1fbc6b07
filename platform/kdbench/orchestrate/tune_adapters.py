"""Ray Tune adapters: a Searcher that hands out jobs in DAG order, a Callback that records them, and a
FIFO trial scheduler that does not scan every trial on every step.

The searcher returns a job only when its upstream jobs have succeeded, None while it must wait,
and FINISHED when every job is resolved — one Tune experiment runs the whole suite with no stage
barrier (Tune's `num_samples=-1`).
"""

from __future__ import annotations

from collections import deque

from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler
from ray.tune.search import Searcher
from ray.tune.stopper import Stopper

from kdbench.engine.run import read_final
from kdbench.store import Store, StoreFullError

from .progress import EPOCHS
from .state import SuiteRun
from .trial_io import ERROR, ERROR_FILE, FINAL, PACK, STATUS, STORE_FULL

_BOOKKEEPING = {"epoch", "done", "training_iteration", "time_this_iter_s", "time_total_s", "timestamp",
                "time_since_restore", "iterations_since_restore", "pid"}


class _DriverOnly:
    """Tune pickles its searcher and callbacks for `Tuner.restore`, which kdbench never uses (a rerun
    of the suite resumes from the store). Their live driver state (threads, locks) is not pickled."""

    def __getstate__(self) -> dict:
        return {}


class DagSearcher(_DriverOnly, Searcher):
    def __init__(self, run: SuiteRun) -> None:
        super().__init__()
        self.run = run

    def suggest(self, trial_id: str):
        config = self.run.next_config()
        if config is not None:
            return config
        return Searcher.FINISHED if self.run.graph.finished else None

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
        pass  # recording happens in RecordingCallback, which sees the unflattened result

    # The plan and the results store are the searcher's state: a rerun rebuilds it from them.
    def save(self, checkpoint_path: str) -> None:
        pass

    def restore(self, checkpoint_path: str) -> None:
        pass


class QueueScheduler(_DriverOnly, FIFOScheduler):
    """First come, first served, in O(1) amortised per controller step. Tune's FIFOScheduler looks for a
    pending trial by scanning every trial of the experiment, finished ones included, on every step of its
    loop: O(jobs) per step, quadratic over a suite (measured: 18 s of a 4,000-job driver's 172 s). Here
    trials queue when Tune adds them (a retried trial is added again) and leave the queue's head once they
    are no longer pending. kdbench never pauses a trial, so there is no paused one to resume."""

    def __init__(self) -> None:
        super().__init__()
        self._queue: deque = deque()

    def on_trial_add(self, tune_controller, trial) -> None:
        self._queue.append(trial)

    def choose_trial_to_run(self, tune_controller):
        while self._queue:
            if self._queue[0].status == Trial.PENDING:
                return self._queue[0]
            self._queue.popleft()
        return None


class AbortStopper(_DriverOnly, Stopper):
    """Stops every trial once the run must abort (the store is full: nothing more can be recorded)."""

    def __init__(self, run: SuiteRun) -> None:
        self.run = run

    def __call__(self, trial_id, result) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.run.abort is not None


class RecordingCallback(_DriverOnly, Callback):
    def __init__(self, run: SuiteRun) -> None:
        self.run = run

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        ids = _job_ids(trial)
        for job_id in ids:
            self.run.started(job_id, len(ids))

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        # A job's progress result carries every epoch since its previous one (progress.ThrottledProgress).
        for epoch in result.get(EPOCHS, ()):
            metrics = {k: v for k, v in epoch.items()
                       if k not in _BOOKKEEPING and isinstance(v, int | float) and not isinstance(v, bool)}
            self.run.epoch(trial.config["job_id"], metrics, int(epoch["epoch"]))

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        result = trial.last_result or {}
        if result.get(STATUS) == PACK:  # a pack of jobs: each job's own outcome
            for job_id, outcome in result[PACK].items():
                self.run.replay_history(job_id)
                self.run.finished(job_id, outcome.get("final"), outcome.get("error"))
        elif result.get(STATUS) == "ok":
            self.run.finished(trial.config["job_id"], result[FINAL], None)
        elif result.get(STATUS) == STORE_FULL:
            self.run.store_full(trial.config["job_id"], StoreFullError.from_text(result[ERROR]))
        elif result.get(STATUS) == "failed":
            self.run.finished(trial.config["job_id"], None, result[ERROR])
        else:  # stopped by Tune before the job reported its end (Ctrl-C)
            for job_id in _job_ids(trial):
                self.run.interrupted(job_id)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        for job_id in _job_ids(trial):
            final = read_final(self.run.store, job_id) if "job_ids" in trial.config else None  # a pack's finished jobs
            if final is not None:
                self.run.replay_history(job_id)
            self.run.finished(job_id, final, None if final is not None else self._reason(job_id, trial))


    def _reason(self, job_id: str, trial) -> str:
        """The worker's own excerpt (in the store), else Tune's error text (e.g. the worker died)."""
        data = self.run.store.read_bytes(Store.artifact(job_id, ERROR_FILE))
        if data is not None:
            return data.decode(errors="replace")
        try:
            with open(trial.error_file) as f:
                return f.read()[-4000:]
        except (OSError, TypeError):
            return f"the job's worker failed {trial.num_failures} time(s) and gave no reason"


def _job_ids(trial) -> list[str]:
    return trial.config.get("job_ids") or [trial.config["job_id"]]
