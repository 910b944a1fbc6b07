"""Compaction merges per-job result files into segments without ever losing, hiding or doubling a row."""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import shutil
import time

import pytest

from kdbench.results import compact as compaction
from kdbench.results import read_results, result_row, statuses, write_result
from kdbench.results.compact import compact, loose_files, maybe_compact
from kdbench.results.store import CLAIMED, SEGMENTS
from kdbench.store import Store
from kdbench.suite import expand, load_suite

from .conftest import TINY_SUITE, write_suite


@pytest.fixture
def template(tmp_path):
    entry = expand(load_suite(str(write_suite(tmp_path, TINY_SUITE)))).entries[0]
    return result_row(entry, "tiny", {"test_acc": 0.5})


def row(template: dict, i: int, **changes) -> dict:
    return {**template, "job_id": f"{i:020x}", "test_acc": i / 1000, **changes}


def rows_by_id(store: Store) -> dict[str, dict]:
    table = read_results(store)
    ids = table["job_id"].to_pylist()
    assert len(ids) == len(set(ids)), "a job read as two rows"
    return {r["job_id"]: r for r in table.to_pylist()}


def test_compaction_keeps_every_row_and_leaves_no_loose_files(tmp_path, template):
    store = Store(tmp_path / "s")
    for i in range(40):
        write_result(store, row(template, i))
    before = rows_by_id(store)
    done = compact(store)
    assert (done.files, done.rows) == (40, 40) and done.segment.startswith(SEGMENTS + "/")
    assert loose_files(store) == [] and store.list_files(CLAIMED) == []
    assert rows_by_id(store) == before
    # Lookups by id find rows inside segments, and ids absent from the store are simply absent.
    wanted = [f"{i:020x}" for i in (3, 17)] + ["f" * 20]
    assert statuses(store, wanted) == {f"{3:020x}": "ok", f"{17:020x}": "ok"}
    assert read_results(store, []).num_rows == 0
    assert compact(store).segment is None  # nothing new: nothing rewritten


def test_a_rerun_after_compaction_wins_and_the_next_compaction_keeps_only_it(tmp_path, template):
    store = Store(tmp_path / "s")
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    write_result(store, row(template, 1, status="failed", error="boom", test_acc=None, finished_at=t0))
    write_result(store, row(template, 2, finished_at=t0))
    compact(store)
    write_result(store, row(template, 1, finished_at=t0 + dt.timedelta(hours=1)))  # the rerun succeeded
    assert statuses(store, [f"{1:020x}"]) == {f"{1:020x}": "ok"}
    compact(store)
    got = rows_by_id(store)
    assert [got[f"{i:020x}"]["status"] for i in (1, 2)] == ["ok", "ok"]
    assert len(store.list_files(SEGMENTS)) == 2
    compact(store, full=True)  # merging segments keeps one row per job
    assert len(store.list_files(SEGMENTS)) == 1 and len(rows_by_id(store)) == 2


def test_a_compaction_that_crashed_midway_loses_nothing_and_is_finished_by_the_next(tmp_path, template):
    store = Store(tmp_path / "s")
    for i in range(10):
        write_result(store, row(template, i))
    compact(store)
    [segment] = store.list_files(SEGMENTS)
    # Crash after writing a new segment, before deleting what it merged: every row exists twice on
    # disk, and a claimed file was left behind.
    shutil.copy(store.path(segment), store.path(f"{SEGMENTS}/20990101T000000000000-crashed.parquet"))
    write_result(store, row(template, 10))
    (tmp_path / "s" / CLAIMED / "t").mkdir(parents=True)
    shutil.move(store.path(loose_files(store)[0]), store.path(f"{CLAIMED}/t/x.parquet"))
    assert len(rows_by_id(store)) == 11
    done = compact(store, full=True)
    assert done.rows == 11 and store.list_files(CLAIMED) == [] and len(store.list_files(SEGMENTS)) == 1


def test_on_object_stores_a_file_rewritten_during_compaction_survives(tmp_path, template, monkeypatch):
    store = Store(tmp_path / "s")
    store.local = False  # as on S3: no rename; loose files are read in place and deleted if unchanged
    for folder in ("00", "segments"):  # an object store needs no folders; this local stand-in does
        (tmp_path / "s" / "results" / folder).mkdir(parents=True)
    for i in range(5):
        write_result(store, row(template, i, status="failed", test_acc=None))
    read = compaction._read

    def read_while_a_worker_rewrites(st, files, bad):
        table = read(st, files, bad)
        write_result(store, row(template, 3))  # job 3's retry finishes mid-compaction
        return table

    monkeypatch.setattr(compaction, "_read", read_while_a_worker_rewrites)
    compact(store)
    assert loose_files(store) == [f"results/00/{3:020x}.parquet"]
    got = rows_by_id(store)
    assert got[f"{3:020x}"]["status"] == "ok" and len(got) == 5


def test_auto_compaction_waits_for_enough_files(tmp_path, template):
    store = Store(tmp_path / "s")
    for i in range(5):
        write_result(store, row(template, i))
    assert maybe_compact(store, threshold=6) is None and len(loose_files(store)) == 5
    assert maybe_compact(store, threshold=5).rows == 5 and loose_files(store) == []


def _writer(uri: str, template: dict, start: int, n: int) -> None:
    store = Store(uri)
    for i in range(start, start + n):
        write_result(store, row(template, i))
        time.sleep(0.01)  # jobs finish over time: compactions must interleave with these writes


def test_compacting_while_writers_and_readers_run_never_hides_or_doubles_a_row(tmp_path, template):
    store = Store(tmp_path / "s")
    ctx = mp.get_context("fork")
    writers = [ctx.Process(target=_writer, args=(store.uri, template, k * 60, 60)) for k in range(4)]
    for p in writers:
        p.start()
    seen, compactions = 0, 0
    while any(p.is_alive() for p in writers):
        compact(store)
        compactions += 1
        now = len(rows_by_id(store))  # asserts one row per job
        assert now >= seen, "a row disappeared"
        seen = now
    for p in writers:
        p.join()
        assert p.exitcode == 0
    compact(store, full=True)
    assert compactions > 1 and len(rows_by_id(store)) == 240 and loose_files(store) == []
