"""The store writes whole files or nothing, and reads results back with the documented schema."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from kdbench.results import RESULT_SCHEMA, read_results, result_row, statuses, write_result
from kdbench.store import Store, StoreError
from kdbench.suite import expand, load_suite

from .conftest import TINY_SUITE, write_suite


def test_writes_replace_atomically_and_leave_no_temporaries(tmp_path):
    store = Store(tmp_path)
    store.write_bytes("a/b/c.bin", b"one")
    store.write_bytes("a/b/c.bin", b"two")
    assert store.read_bytes("a/b/c.bin") == b"two"
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["c.bin"]
    assert store.read_bytes("a/missing") is None


def test_unknown_uri_scheme_is_a_clear_error():
    with pytest.raises(StoreError, match="unsupported store URI scheme 'ftp://'"):
        Store("ftp://example/x")


def test_one_row_per_job_even_when_rewritten(tmp_path):
    store = Store(tmp_path)
    plan = expand(load_suite(str(write_suite(tmp_path, TINY_SUITE))))
    entry = plan.entries[0]
    write_result(store, result_row(entry, "tiny", status="failed", error="boom"))
    assert statuses(store, [entry.job_id]) == {entry.job_id: "failed"}
    write_result(store, result_row(entry, "tiny", {"test_acc": 0.5}))
    table = read_results(store)
    assert table.num_rows == 1 and table["status"][0].as_py() == "ok"
    assert table.schema.equals(RESULT_SCHEMA)
    on_disk = pq.read_table(tmp_path / "results" / entry.job_id[:2] / f"{entry.job_id}.parquet")
    assert on_disk.column_names == RESULT_SCHEMA.names


def test_a_plan_is_rewritten_only_when_it_changes(tmp_path):
    from kdbench.results import read_plan, write_plan

    store = Store(tmp_path / "s")
    first = write_plan(store, expand(load_suite(str(write_suite(tmp_path, TINY_SUITE)))))
    assert write_plan(store, expand(load_suite(str(write_suite(tmp_path, TINY_SUITE))))) == first
    renamed = TINY_SUITE.replace("big", "large")  # same jobs, new names
    second = write_plan(store, expand(load_suite(str(write_suite(tmp_path, renamed)))))
    assert second != first
    assert "large" in read_plan(store, "tiny")["teacher"].to_pylist()
