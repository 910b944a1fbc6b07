"""Compaction: merge the per-job result files into a few large Parquet segments.

Workers write one small file per job (results/<id[:2]>/<id>.parquet) because that is the only write
that many processes can make at once without coordination. Reading 10,000 such files costs
~1.4 ms each; the same rows in one file read in milliseconds. Compaction rewrites them as segments
(results/segments/<stamp>-<token>.parquet) without ever hiding or doubling a row for a reader:

1. claim: on a local or NFS store each loose file is renamed into results/claimed/<token>/ (an
   atomic rename; a worker that rewrites the same job afterwards writes a fresh loose file that this
   compaction does not touch). Object stores have no rename: there the loose files are read in place
   and each is deleted only if it is unchanged since it was listed (same size and modification
   time), so a rewrite that lands meanwhile survives.
2. write: the claimed rows, and the existing segments when they are merged too, are deduplicated
   (highest `attempt` per job) and written as one new segment, whole or not at all; an unreadable input
   is moved to quarantine/ (kdbench/results/unreadable.py), never deleted.
3. clean up: the claimed files and merged segments are deleted.

A crash at any step loses nothing: claimed files and old segments are still under results/, and
readers keep one row per job (kdbench/results/store.py, `latest_per_job`). Two compactions at once
lose nothing either (one may fail when the other has taken its claimed files; run it again).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs

from kdbench.store import Store

from .schema import RESULT_SCHEMA
from .store import CLAIMED, SEGMENTS, _parquet_bytes, is_loose, latest_per_job
from .unreadable import quarantine, read_files

MAX_SEGMENTS = 8  # more segments than this after a compaction: merge them all into one
AUTO_COMPACT_FILES = 512  # `kdbench run` compacts when it finds at least this many loose files


@dataclass(frozen=True)
class Compaction:
    files: int  # loose files merged
    segments_merged: int  # existing segments rewritten into the new one
    rows: int  # rows in the new segment
    segment: str | None  # its path, None when there was nothing to do

    def describe(self) -> str:
        if self.segment is None:
            return "results: nothing to compact"
        return (f"results: compacted {self.files} job files and {self.segments_merged} segments into "
                f"{self.segment} ({self.rows} rows)")


def loose_files(store: Store) -> list[str]:
    return [f for f in store.list_files("results", ".parquet") if is_loose(f)]


def compact(store: Store, full: bool = False) -> Compaction:
    """Merge every loose result file (and, with `full` or past MAX_SEGMENTS, every segment) into one
    new segment."""
    token = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"
    listed = _file_infos(store, "results")
    loose = [rel for rel in listed if is_loose(rel)]
    # Files claimed by a compaction that crashed before its clean-up are finished here.
    stale_claims = [rel for rel in listed if rel.startswith(CLAIMED + "/")]
    segments = [rel for rel in listed if rel.startswith(SEGMENTS + "/")]
    merge_segments = full or len(segments) + 1 > MAX_SEGMENTS
    if not loose and not stale_claims and not (merge_segments and len(segments) > 1):
        return Compaction(0, 0, 0, None)

    inputs = _claim(store, loose, token) if store.local else list(loose)
    inputs += stale_claims
    if merge_segments:
        inputs += segments
    bad: dict[str, str] = {}
    table = latest_per_job(_read(store, inputs, bad))
    quarantine(store, list(bad))  # unreadable inputs are moved aside, never deleted
    inputs = [rel for rel in inputs if rel not in bad]
    table = table.sort_by("job_id")  # row-group statistics then prune job-id filters
    segment = f"{SEGMENTS}/{token}.parquet"
    store.write_bytes(segment, _parquet_bytes(table))

    for rel in inputs:
        if store.local or not is_loose(rel):
            store.delete(rel)
        elif _unchanged(store, rel, listed[rel]):
            store.delete(rel)
    return Compaction(len(loose) + len(stale_claims), len(segments) if merge_segments else 0,
                      table.num_rows, segment)


def maybe_compact(store: Store, threshold: int = AUTO_COMPACT_FILES) -> Compaction | None:
    """Compact when at least `threshold` loose files have accumulated (called by the driver after a run)."""
    if len(loose_files(store)) < threshold:
        return None
    return compact(store)


def _file_infos(store: Store, rel: str) -> dict[str, pafs.FileInfo]:
    selector = pafs.FileSelector(store.path(rel), recursive=True, allow_not_found=True)
    base = len(store.root.rstrip("/")) + 1
    return {i.path[base:]: i for i in store.fs.get_file_info(selector)
            if i.type == pafs.FileType.File and i.path.endswith(".parquet") and not i.base_name.startswith(".tmp-")}


def _claim(store: Store, loose: list[str], token: str) -> list[str]:
    claimed = []
    store.fs.create_dir(store.path(CLAIMED, token), recursive=True)
    for rel in loose:
        target = f"{CLAIMED}/{token}/{rel.rsplit('/', 1)[-1]}"
        try:
            store.fs.move(store.path(rel), store.path(target))
        except FileNotFoundError:  # claimed by a concurrent compaction
            continue
        claimed.append(target)
    return claimed


def _read(store: Store, files: list[str], bad: dict[str, str]) -> pa.Table:
    return read_files(store, files, RESULT_SCHEMA, bad=bad)


def _unchanged(store: Store, rel: str, before: pafs.FileInfo) -> bool:
    now = store.fs.get_file_info(store.path(rel))
    return now.type == pafs.FileType.File and now.size == before.size and now.mtime == before.mtime
