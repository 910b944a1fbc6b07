"""The plan's DAG at run time: which jobs are ready, which wait, which are skipped.

Pure Python (no Ray), linear in jobs + edges. A job is ready as soon as all its upstream jobs have
succeeded — there are no stage barriers. Among ready jobs, the one heading the longest chain of
dependants goes first, so teachers start before students and the critical path is never idle.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from kdbench.jobs import Job


class JobGraph:
    def __init__(self, jobs: dict[str, Job], done: Iterable[str] = ()) -> None:
        """`jobs`: the plan in topological order; `done`: ids whose result already exists."""
        done = set(done)
        self.pending = [i for i in jobs if i not in done]
        pending = set(self.pending)
        self.children: dict[str, list[str]] = {i: [] for i in pending}
        self.waiting: dict[str, int] = {}
        for i in self.pending:
            ups = set(jobs[i].depends_on) & pending  # teachers, and the teacher outputs it reads
            self.waiting[i] = len(ups)
            for u in ups:
                self.children[u].append(i)
        height = {i: 0 for i in pending}
        for i in reversed(self.pending):  # reverse topological order: children are final first
            for c in self.children[i]:
                height[i] = max(height[i], height[c] + 1)
        self._order = {i: n for n, i in enumerate(self.pending)}
        self._height = height
        self._ready: list[tuple[int, int, str]] = []
        for i in self.pending:
            if self.waiting[i] == 0:
                self._push(i)
        self.resolved = 0  # jobs finished, failed or skipped

    def _push(self, job_id: str) -> None:
        heapq.heappush(self._ready, (-self._height[job_id], self._order[job_id], job_id))

    def pop_ready(self) -> str | None:
        return heapq.heappop(self._ready)[2] if self._ready else None

    def complete(self, job_id: str, ok: bool) -> list[str]:
        """Record a finished job; returns the jobs skipped because it failed (all its dependants)."""
        self.resolved += 1
        if ok:
            for c in self.children[job_id]:
                if c not in self.waiting:  # skipped through a failed upstream
                    continue
                self.waiting[c] -= 1
                if self.waiting[c] == 0:
                    self._push(c)
            return []
        skipped, stack = [], list(self.children[job_id])
        while stack:
            c = stack.pop()
            if self.waiting.pop(c, None) is None:  # already skipped through another path
                continue
            skipped.append(c)
            stack.extend(self.children[c])
        self.resolved += len(skipped)
        return skipped

    @property
    def finished(self) -> bool:
        return self.resolved >= len(self.pending)

    @property
    def has_ready(self) -> bool:
        return bool(self._ready)
