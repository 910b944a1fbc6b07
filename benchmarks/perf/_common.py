"""Shared helpers for the perf benchmarks: timing, machine facts, result rows."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One line of the run_all table: kdbench's figure, the baseline's, their ratio and the goal."""

    benchmark: str
    kdbench: str
    baseline: str
    ratio: float | None
    goal: str
    met: bool

    def cells(self) -> list[str]:
        ratio = "—" if self.ratio is None else f"{self.ratio:.3g}"
        return [self.benchmark, self.kdbench, self.baseline, ratio, self.goal, "yes" if self.met else "NO"]


def timed(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> tuple[float, object]:
    """Median wall seconds of `fn` over `repeats` calls after `warmup` untimed calls; and its last result."""
    out = None
    for _ in range(warmup):
        out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def machine() -> dict[str, str]:
    import os

    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return {"nproc": str(os.cpu_count()), "cpu": model, "python": platform.python_version()}


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("torch", "ray", "mlflow", "duckdb", "pyarrow"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "absent"
    return out


def table(rows: list[list[str]], header: list[str]) -> str:
    """A GitHub-markdown table (also readable in a terminal)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])
