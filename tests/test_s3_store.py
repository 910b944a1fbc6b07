"""The store on S3 (moto's server on loopback): the same layout as on disk, a result file is one
PutObject, a writer stopped mid-upload leaves nothing visible, and the CLI reads an s3:// store."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest
from typer.testing import CliRunner

from kdbench.cli import app
from kdbench.results import read_plan, read_results, result_row, write_plan, write_result
from kdbench.store import Store, StoreError, s3_filesystem
from kdbench.suite import expand, load_suite

from .conftest import TINY_SUITE, write_suite
from .services import wait_until


@pytest.fixture
def s3_store(s3_server):
    return Store(f"s3://{s3_server.bucket}/stores/{uuid.uuid4().hex[:8]}")


def _filled(store: Store, tmp_path):
    plan = expand(load_suite(str(write_suite(tmp_path, TINY_SUITE))))
    write_plan(store, plan)
    for i, e in enumerate(plan.entries):
        write_result(store, result_row(e, "tiny", {"test_acc": 0.5 + 0.01 * (i % 7), "val_acc": 0.5}))
    return plan


def test_results_plans_and_artifacts_round_trip_with_the_local_layout(s3_server, s3_store, tmp_path):
    plan = _filled(s3_store, tmp_path)
    job = plan.entries[0].job_id
    s3_store.write_bytes(Store.artifact(job, "model.pt"), b"weights")
    assert s3_store.read_bytes(Store.artifact(job, "model.pt")) == b"weights"
    assert s3_store.read_bytes(Store.artifact(job, "missing.pt")) is None
    assert read_results(s3_store).num_rows == len(plan)
    assert sorted(read_plan(s3_store, "tiny")["job_id"].to_pylist()) == sorted(plan.jobs)

    prefix = s3_store.root.split("/", 1)[1] + "/"
    keys = [k[len(prefix):] for k in s3_server.keys(prefix)]
    assert f"artifacts/{job}/model.pt" in keys
    assert {f"results/{j[:2]}/{j}.parquet" for j in plan.jobs} <= set(keys)
    assert any(k.startswith("plans/tiny/") for k in keys)
    assert not [k for k in keys if k.endswith("/")], "no folder-marker objects"
    assert s3_store.list_files("results", ".parquet") == sorted(f"results/{j[:2]}/{j}.parquet" for j in plan.jobs)


def test_the_endpoint_comes_from_the_environment(s3_server, monkeypatch):
    monkeypatch.setenv("KDBENCH_S3_ENDPOINT", "http://127.0.0.1:9")
    assert s3_filesystem().region == "us-east-1"
    monkeypatch.setenv("KDBENCH_S3_ENDPOINT", "http://")
    with pytest.raises(StoreError, match="S3 endpoint"):
        Store("s3://bucket/x")


class Proxy:
    """A TCP relay on loopback in front of the S3 server that records what clients send and can stop
    forwarding after `stall_after` bytes of client data (a writer whose upload is cut off)."""

    def __init__(self, upstream: str, stall_after: int | None = None) -> None:
        host, port = upstream.split("://", 1)[1].split(":")
        self.upstream = (host, int(port))
        self.stall_after, self.sent, self.stalled = stall_after, 0, threading.Event()
        self.data = bytearray()
        self.lock = threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def requests(self) -> list[tuple[str, str]]:
        return [(m.group(1).decode(), m.group(2).decode())
                for m in re.finditer(rb"(GET|PUT|POST|HEAD|DELETE) (\S+) HTTP/1\.1\r\n", bytes(self.data))]

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, upload: bool) -> None:
        try:
            while chunk := src.recv(65536):
                if upload:
                    with self.lock:
                        if self.stall_after is not None:
                            room = max(0, self.stall_after - self.sent)
                            if len(chunk) > room:
                                chunk = chunk[:room]
                                self.stalled.set()
                        self.sent += len(chunk)
                        self.data += chunk
                    if chunk:
                        dst.sendall(chunk)
                    if self.stalled.is_set():
                        return  # hold the connection open, forward nothing more
                else:
                    dst.sendall(chunk)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()


def test_a_result_file_is_uploaded_whole_in_one_request(s3_server, tmp_path, monkeypatch):
    proxy = Proxy(s3_server.endpoint)
    monkeypatch.setenv("KDBENCH_S3_ENDPOINT", proxy.endpoint)
    try:
        store = Store(f"s3://{s3_server.bucket}/one-put")
        plan = expand(load_suite(str(write_suite(tmp_path, TINY_SUITE))))
        entry = plan.entries[0]
        write_result(store, result_row(entry, "tiny", {"test_acc": 0.5}))
        writes = [(m, p) for m, p in proxy.requests() if m in ("PUT", "POST")]
        assert writes == [("PUT", f"/{s3_server.bucket}/one-put/results/{entry.job_id[:2]}/{entry.job_id}.parquet")]
    finally:
        proxy.close()


WRITER = """
import sys
from kdbench.store import Store
Store(sys.argv[1]).write_bytes(sys.argv[2], b"x" * int(sys.argv[3]))
"""


def test_a_writer_cut_off_mid_upload_leaves_nothing_visible(s3_server):
    size = 2_000_000  # below the multipart threshold: one PutObject
    proxy = Proxy(s3_server.endpoint, stall_after=size // 2)
    uri, rel = f"s3://{s3_server.bucket}/cut", "results/ab/abc.parquet"
    env = {**os.environ, "KDBENCH_S3_ENDPOINT": proxy.endpoint}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, uri, rel, str(size)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = Store(uri)  # straight to the server, not through the proxy
    try:
        assert proxy.stalled.wait(60), "the writer never started its upload"
        time.sleep(0.5)  # the server has had half the body for a while
        assert proxy.requests()[-1][0] == "PUT"
        assert store.read_bytes(rel) is None and store.list_files("results") == []
        writer.kill()  # the writer dies mid-upload
        writer.wait(10)
        time.sleep(0.5)
        assert store.read_bytes(rel) is None and store.list_files("results") == []
        assert s3_server.keys("cut/") == []
    finally:
        if writer.poll() is None:
            writer.kill()
        proxy.close()
    # The same write, not cut off, is visible whole.
    subprocess.run([sys.executable, "-c", WRITER, uri, rel, str(size)], check=True, timeout=60)
    assert wait_until(lambda: store.read_bytes(rel), 10, "object") == b"x" * size


def test_leaderboard_and_query_read_an_s3_store(s3_store, tmp_path):
    _filled(s3_store, tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["query", "select kind, count(*) n from results group by kind order by kind",
                                 "--store", s3_store.uri, "--format", "csv"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["kind,n", "baseline,2", "student,10", "teacher,2"]
    board = runner.invoke(app, ["leaderboard", "tiny", "--store", s3_store.uri, "--html", str(tmp_path / "lb.html")],
                          catch_exceptions=False)
    assert board.exit_code == 0, board.output
    assert "Methods on synthetic" in board.output
    assert (tmp_path / "lb.html").read_text().startswith("<!DOCTYPE html>")
