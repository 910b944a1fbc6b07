"""Every path in the store, named once (torch-free: the driver, readers and workers all use it).

    artifacts/<job_id>/last.pt           the full training state after the last finished epoch (resume)
    artifacts/<job_id>/model.pt          the job's selected weights, read by downstream jobs
    artifacts/<job_id>/epoch_<e>.pt      a teacher's weights snapshot after epoch e
    artifacts/<job_id>/final.json        the job's final metrics (kdbench.jobs.JobFinal), written last
    artifacts/<job_id>/history.json      per-epoch metrics
    artifacts/<job_id>/error.txt         the last exception of the job's worker
    artifacts/<job_id>/placement.json    where the job last ran
    artifacts/<job_id>/view_<v>.arrow, test.arrow, meta.json   a teacher-output job's cache
    results/<id[:2]>/<job_id>.parquet    one result row per job (results/segments/, results/claimed/: compaction)
    plans/<suite>/<stamp>-<digest>.parquet   each suite's plans
    references/<suite>.csv               a suite's published numbers
    leaderboards/<suite>/…               a suite's report; leaderboards/<suite>/views/… its study views
    searches/<key>/trials.parquet, selected.json   a search cell's trials and choice; searches/<suite>/<key>.json
    superseded/<job_id>/<stamp>/…        a job's artifacts and result row set aside by `kdbench run --rerun`
    costs/<digest>.json                  measured costs of an architecture (parameters, FLOPs, latency)
    mlflow/                              the embedded MLflow; ray/  Ray Tune's experiment state
"""

from __future__ import annotations

LAST, MODEL, FINAL, HISTORY, ERROR, PLACEMENT = (
    "last.pt", "model.pt", "final.json", "history.json", "error.txt", "placement.json")
OUTPUTS_META, OUTPUTS_TEST = "meta.json", "test.arrow"
RESULTS, SEGMENTS, CLAIMED = "results", "results/segments", "results/claimed"
PLANS, COSTS, MLFLOW, RAY = "plans", "costs", "mlflow", "ray"


def artifact(job_id: str, name: str) -> str:
    return f"artifacts/{job_id}/{name}"


def snapshot_file(epoch: int) -> str:
    """A teacher's weights after `epoch` (Job.snapshots), in the checkpoint format of MODEL."""
    return f"epoch_{epoch}.pt"


def view_file(view: int) -> str:
    """One view of a teacher-output job's cache."""
    return f"view_{view:05d}.arrow"


def superseded(job_id: str, stamp: str, name: str) -> str:
    """Where `kdbench run --rerun` keeps a job's earlier artifact `name` (or its row, `result.parquet`)."""
    return f"superseded/{job_id}/{stamp}/{name}"


def result(job_id: str) -> str:
    return f"{RESULTS}/{job_id[:2]}/{job_id}.parquet"


def plans(suite: str) -> str:
    return f"{PLANS}/{suite}"


def reference(suite: str) -> str:
    return f"references/{suite}.csv"


def leaderboard(suite: str, name: str = "") -> str:
    return f"leaderboards/{suite}/{name}" if name else f"leaderboards/{suite}"


def cost(digest: str) -> str:
    return f"{COSTS}/{digest}.json"


def search(key: str, name: str) -> str:
    """A search cell's files (its key is a content hash of the cell)."""
    return f"searches/{key}/{name}"


def suite_searches(suite: str) -> str:
    """Where a suite links the searches it ran (one JSON per cell)."""
    return f"searches/{suite}"
