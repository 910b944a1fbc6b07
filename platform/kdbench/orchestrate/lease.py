"""Job leases: one driver trains a job at a time, however many drivers run the same suite on one store.

A driver (`kdbench run`, a `kdbench submit`ted job, the searches) takes a job's lease before it hands the
job to Ray and gives it back once the job's row is written. A lease is a generation file in the store,

    leases/<job_id>/<generation>.json   {"holder", "host", "pid", "pid_start", "beat"}

created only if absent (`Store.create`: a hard link locally, a conditional PutObject on S3), so of two
drivers creating the same generation exactly one wins. The holder renews it every TTL/3 seconds (`beat`
counts up). Another driver finds the highest generation and waits while its holder lives. A holder is
dead when its file has not changed for TTL seconds measured on the observer's own monotonic clock (no
clock of another machine is trusted), or at once when it names a process of this host that no longer
runs. A dead holder's job is taken over by creating the next generation — again exactly one wins —
after which the lower generations are removed. A holder whose renewal finds a higher generation has
lost the job (it stalled past the TTL) and records nothing for it.

After taking a lease the driver reads the job's row again (SuiteRun): a job finished meanwhile by
another driver is counted as theirs, not run.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid

from kdbench.store import Store

log = logging.getLogger("kdbench.orchestrate")

LEASES = "leases"
DEFAULT_TTL_S = 60.0


def lease_ttl() -> float:
    """Seconds without renewal after which a lease's holder counts as dead (KDBENCH_LEASE_TTL_S)."""
    raw = os.environ.get("KDBENCH_LEASE_TTL_S")
    if not raw:
        return DEFAULT_TTL_S
    try:
        ttl = float(raw)
    except ValueError:
        ttl = float("nan")
    if not 0.5 <= ttl <= 86400:
        raise ValueError(f"KDBENCH_LEASE_TTL_S must be between 0.5 and 86400 seconds (got {raw})")
    return ttl


def _pid_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid from its holder."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive_here(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return start is None or _pid_start(pid) in (None, start)


class Leases:
    def __init__(self, store: Store, ttl: float | None = None) -> None:
        self.store, self.ttl = store, ttl if ttl is not None else lease_ttl()
        self.me = {"holder": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid(),
                   "pid_start": _pid_start(os.getpid())}
        self.held: dict[str, tuple[str, int]] = {}  # job id -> (its generation file, beats)
        self.lost: set[str] = set()  # jobs whose lease another driver took over from this one
        self._seen: dict[str, tuple[str, bytes | None, float]] = {}  # job -> (file, content, first seen)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- taking and giving back ----------------------------------------------------------------

    def acquire(self, job_id: str) -> bool:
        """Take the job's lease; False while another live driver holds it."""
        files = self.store.list_files(f"{LEASES}/{job_id}", ".json")
        generation = 1
        if files:
            top = files[-1]
            content = self.store.read_bytes(top)
            if not self._dead(job_id, top, content):
                return False
            generation = _generation(top) + 1
        rel = f"{LEASES}/{job_id}/{generation:012d}.json"
        if not self.store.create(rel, self._body(0)):
            return False  # another driver took it first
        with self._lock:
            self.held[job_id] = (rel, 0)
            self.lost.discard(job_id)
        self._seen.pop(job_id, None)
        for old in files:  # the dead holders' generations
            self.store.delete(old)
        self._start_heartbeat()
        return True

    def release(self, job_id: str) -> None:
        with self._lock:
            held = self.held.pop(job_id, None)
            self.lost.discard(job_id)
        if held is not None:
            try:
                self.store.delete(held[0])
            except OSError as e:  # it expires by itself
                log.warning("could not give back the lease of job %s: %s", job_id, e)

    def close(self) -> None:
        """Stop renewing and give back every lease still held."""
        self._stop.set()
        for job_id in list(self.held):
            self.release(job_id)

    # -- liveness --------------------------------------------------------------------------------

    def _dead(self, job_id: str, top: str, content: bytes | None) -> bool:
        holder = _parse(content)
        if holder.get("holder") == self.me["holder"]:
            return False  # our own lease (held elsewhere in this driver): never taken from ourselves
        if holder.get("host") == self.me["host"] and isinstance(holder.get("pid"), int) \
                and not _alive_here(holder["pid"], holder.get("pid_start")):
            return True  # its process on this machine has ended
        now = time.monotonic()
        seen = self._seen.get(job_id)
        if seen is None or seen[0] != top or seen[1] != content:  # renewed (or new) since we last looked
            self._seen[job_id] = (top, content, now)
            return False
        return now - seen[2] >= self.ttl

    def _body(self, beat: int) -> bytes:
        return json.dumps({**self.me, "beat": beat}).encode()

    def _start_heartbeat(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._heartbeat, name="kdbench-leases", daemon=True)
            self._thread.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            with self._lock:
                held = dict(self.held)
            for job_id, (rel, beat) in held.items():
                try:
                    self.renew(job_id, rel, beat + 1)
                except Exception as e:  # the store did not answer: try again next beat (expiry is the limit)
                    log.warning("could not renew the lease of job %s: %s", job_id, e)

    def renew(self, job_id: str, rel: str, beat: int) -> None:
        files = self.store.list_files(f"{LEASES}/{job_id}", ".json")
        if files and files[-1] != rel or not files:  # taken over (or cleaned away) while we stalled
            with self._lock:
                if self.held.get(job_id, (None,))[0] == rel:
                    self.lost.add(job_id)
            log.warning("job %s was taken over by another driver (this one did not renew its lease within "
                        "%g s): its outcome here is not recorded", job_id, self.ttl)
            return
        self.store.write_bytes(rel, self._body(beat))
        with self._lock:
            if self.held.get(job_id, (None,))[0] == rel:
                self.held[job_id] = (rel, beat)


def _generation(rel: str) -> int:
    try:
        return int(rel.rsplit("/", 1)[-1].split(".", 1)[0])
    except ValueError:
        return 0


def _parse(content: bytes | None) -> dict:
    try:
        value = json.loads(content or b"{}")
        return value if isinstance(value, dict) else {}
    except ValueError:
        return {}
