"""Many jobs finishing at once into one store: every row readable, none torn, none doubled."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time

import pyarrow.parquet as pq

from kdbench.results import read_results, result_row, write_result
from kdbench.store import Store
from kdbench.suite import expand, load_suite

from .conftest import TINY_SUITE, write_suite

WRITERS = 64


def _write_rows(store_uri: str, entry, index: int) -> None:
    store = Store(store_uri)
    for attempt in range(5):  # each writer rewrites its job's row: last write wins, whole
        write_result(store, result_row(entry, "tiny", {"test_acc": index + attempt / 10}))


def test_sixty_four_concurrent_writers_and_a_reader(tmp_path):
    path = write_suite(tmp_path, TINY_SUITE)
    store = Store(tmp_path / "store")
    entries = expand(load_suite(str(path))).entries
    ctx = mp.get_context("fork")  # the writers are processes, as Ray workers are; fork keeps them cheap
    procs = [ctx.Process(target=_write_rows, args=(store.uri, entries[i % len(entries)], i))
             for i in range(WRITERS)]
    for p in procs:
        p.start()
    reads = 0
    while any(p.is_alive() for p in procs):  # a reader racing the writers never sees a torn file
        table = read_results(store)
        assert len(set(table["job_id"].to_pylist())) == table.num_rows
        reads += 1
    for p in procs:
        p.join()
        assert p.exitcode == 0
    table = read_results(store)
    assert table.num_rows == len(entries)  # 64 writers, 14 jobs: one row each
    assert reads > 0
    for row in table.to_pylist():  # each row is one writer's whole last write
        assert round(row["test_acc"] % 1, 6) == 0.4


def _write_forever(store_uri: str) -> None:
    store = Store(store_uri)
    blob = os.urandom(64 * 2**20)  # large enough that the kill lands mid-write
    while True:
        store.write_bytes("results/zz/big.parquet", blob)


def test_a_writer_killed_mid_write_leaves_nothing_a_reader_sees(tmp_path):
    store = Store(tmp_path / "store")
    ctx = mp.get_context("fork")
    proc = ctx.Process(target=_write_forever, args=(store.uri,))
    proc.start()
    deadline = time.monotonic() + 60
    while not list((tmp_path / "store").rglob(".tmp-*")) and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert list((tmp_path / "store").rglob(".tmp-*")), "the kill did not land mid-write"
    visible = store.list_files("results")
    for rel in visible:  # only whole files are visible: the target, if any write completed
        assert os.path.getsize(store.path(rel)) == 64 * 2**20
    assert read_results(store, []).num_rows == 0


def test_result_files_written_by_the_store_are_valid_parquet(tmp_path):
    path = write_suite(tmp_path, TINY_SUITE)
    store = Store(tmp_path / "store")
    _write_rows(store.uri, expand(load_suite(str(path))).entries[0], 0)
    [rel] = store.list_files("results", ".parquet")
    assert pq.read_table(store.path(rel)).num_rows == 1
