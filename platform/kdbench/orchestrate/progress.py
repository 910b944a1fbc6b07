"""A trial's per-epoch progress to Tune, throttled: at most one result per `interval` seconds.

Every Tune result costs the driver CPU (its callbacks, the trial's bookkeeping, experiment-state
saves); a small student on a fast device finishes an epoch every few tens of milliseconds, and a
suite of thousands of trials would turn the driver into the bottleneck, competing with training for
the same cores. The epochs between two results are carried, in order, in the next result's EPOCHS
list, so the tracker still logs every epoch at its own step; only its live view lags by at most
`interval`. The first epoch is sent at once (a job visibly started) and `flush` sends what is left
before the job's final report.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

EPOCHS = "kdbench_epochs"  # a progress result's list of per-epoch metrics since the previous result
INTERVAL_ENV = "KDBENCH_REPORT_INTERVAL_S"
DEFAULT_INTERVAL_S = 5.0


def report_interval() -> float:
    """Seconds between two progress results of one trial (0: every epoch), from KDBENCH_REPORT_INTERVAL_S."""
    raw = os.environ.get(INTERVAL_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_INTERVAL_S
    except ValueError:
        raise ValueError(f"{INTERVAL_ENV}={raw[:40]!r} is not a number of seconds") from None
    if not 0 <= value <= 86_400:  # also refuses nan and inf
        raise ValueError(f"{INTERVAL_ENV}={raw[:40]!r} must be a number of seconds in 0..86400")
    return value


class ThrottledProgress:
    """`report(metrics)` for the engine; sends `send({**last epoch's metrics, EPOCHS: [epochs…]})`."""

    def __init__(self, send: Callable[[dict], None], interval: float, clock: Callable[[], float] = time.monotonic):
        self.send, self.interval, self.clock = send, interval, clock
        self.pending: list[dict] = []
        self.last_sent: float | None = None

    def __call__(self, metrics: dict) -> None:
        self.pending.append(dict(metrics))
        if self.last_sent is None or self.clock() - self.last_sent >= self.interval:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            epochs, self.pending = self.pending, []
            self.send({**epochs[-1], EPOCHS: epochs})
            self.last_sent = self.clock()
