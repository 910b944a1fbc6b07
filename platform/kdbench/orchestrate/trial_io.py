"""What a trial's worker and the driver agree on: the keys of a trial's results, the files a job's worker
leaves in the store for the driver, and the helpers that write them. Imported by both sides, so it imports
nothing of either (the trainables import it, and so does the driver's recording of results)."""

from __future__ import annotations

import json
import os
import socket
import traceback

from kdbench import paths
from kdbench.store import Store

STATUS, FINAL, ERROR = "kdbench_status", "kdbench_final", "kdbench_error"
STORE_FULL = "store_full"  # STATUS of a trial whose store write found the disk full: the driver stops the suite
PACK = "kdbench_pack"  # STATUS of a pack's trial, and its report's {job id: {"final": …} | {"error": …}}
ERROR_FILE = paths.ERROR  # the last exception of a job's worker, read by the driver if Tune gives up
PLACEMENT_FILE = paths.PLACEMENT  # where the job last ran: Ray node id, host, pid (raylets may share a host)


def error_excerpt(exc: BaseException, limit: int = 4000) -> str:
    text = "".join(traceback.format_exception(exc))
    return f"{type(exc).__name__}: {exc}\n" + text[-limit:]


def write_error(store: Store, job_id: str, exc: BaseException) -> None:
    """The job's last exception, for the driver to report if Tune gives up on the job."""
    store.write_bytes(Store.artifact(job_id, ERROR_FILE), error_excerpt(exc).encode())


def record_placement(store: Store, job_id: str) -> None:
    """One small file per job attempt: which node ran it (kept out of the results schema)."""
    import ray

    info = {"node_id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(), "pid": os.getpid()}
    store.write_bytes(Store.artifact(job_id, PLACEMENT_FILE), json.dumps(info).encode())
