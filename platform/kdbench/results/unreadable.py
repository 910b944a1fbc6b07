"""Result and plan files that cannot be read (truncated, empty, garbage, another schema): skipped by readers,
reported in one line, and moved aside by `kdbench run` (never deleted).

Readers first read all files as one dataset (the fast path); only when that fails do they read file by
file to find the bad ones, so one bad file costs one slow read and hides no other file's rows.
Quarantined files go to quarantine/<their path>.<stamp>; their jobs have no row any more, so the next
`kdbench run` re-records them (a job whose `final.json` is intact is recorded again without training).
"""

from __future__ import annotations

import datetime as dt
import logging

import pyarrow as pa
import pyarrow.dataset as pads

from kdbench.store import Store

log = logging.getLogger("kdbench.results")
QUARANTINE = "quarantine"
_reported: set[tuple[str, str]] = set()  # (store, file) already reported by this process


def vanished(e: BaseException) -> bool:
    """A file listed a moment ago is gone (a compaction took it): list again."""
    text = str(e).lower()
    return isinstance(e, FileNotFoundError) or (
        isinstance(e, OSError) and any(w in text for w in ("not found", "no such", "does not exist")))


def _unreadable(e: BaseException) -> bool:
    return isinstance(e, pa.ArrowException | OSError) and not vanished(e)


def read_files(store: Store, files: list[str], schema: pa.Schema, columns: list[str] | None = None,
               filter=None, bad: dict[str, str] | None = None) -> pa.Table:
    """The rows of `files` (store-relative) as one table of `schema`; unreadable files are skipped,
    reported once, and added to `bad` (path -> reason)."""
    if not files:
        return schema.empty_table().select(columns or schema.names)
    try:
        return _dataset(store, files, schema).to_table(columns=columns, filter=filter)
    except Exception as e:
        if not _unreadable(e):
            raise
    parts, found = [], {}
    for f in files:
        try:
            parts.append(_dataset(store, [f], schema).to_table(columns=columns, filter=filter))
        except Exception as e:
            if not _unreadable(e):
                raise
            found[f] = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
    report(store, found)
    if bad is not None:
        bad.update(found)
    if not parts:
        return schema.empty_table().select(columns or schema.names)
    return pa.concat_tables(parts)


def _dataset(store: Store, files: list[str], schema: pa.Schema):
    return pads.dataset([store.path(f) for f in files], schema=schema, format="parquet", filesystem=store.fs)


def report(store: Store, found: dict[str, str]) -> None:
    new = {f: why for f, why in found.items() if (store.uri, f) not in _reported}
    if not new:
        return
    _reported.update((store.uri, f) for f in new)
    first, why = next(iter(new.items()))
    more = f" and {len(new) - 1} more" if len(new) > 1 else ""
    log.warning("skipped %d unreadable file(s) in %s: %s (%s)%s; `kdbench run` moves them to %s/ and "
                "re-records their jobs", len(new), store.uri, first, why, more, QUARANTINE)


def quarantine(store: Store, files: list[str]) -> list[str]:
    """Move each file to quarantine/<path>.<stamp> (never deleted); returns where they went."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    moved = []
    for rel in files:
        dest = f"{QUARANTINE}/{rel}.{stamp}"
        try:
            store.move(rel, dest)
        except FileNotFoundError:  # moved or compacted away meanwhile
            continue
        moved.append(dest)
    if moved:
        log.warning("moved %d unreadable file(s) to %s/ in %s (their jobs are recorded again)", len(moved),
                    QUARANTINE, store.uri)
    return moved
