"""Job leases on a gs:// store (no GCS emulator here): an object store modelled by fsspec's in-memory
filesystem behind pyarrow (an object appears whole when its upload closes, as on GCS).

With google-cloud-storage installed a lease is an upload with `ifGenerationMatch=0` (exact), here against a
client that keeps GCS's contract (412 PreconditionFailed when the object exists); without it, create-then-
verify (best effort): of writers racing for one name, only the one whose bytes stay answers True."""

from __future__ import annotations

import threading
import uuid

import pyarrow.fs as pafs
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from google.api_core.exceptions import PreconditionFailed

from kdbench import store as store_module
from kdbench.orchestrate.lease import LEASES, Leases
from kdbench.store import Store, create_then_verify


def memory_gcs_store(tmp_path) -> Store:
    """A Store as a gs:// URI makes it, over an in-memory object store of its own."""
    st = Store(tmp_path / "unused")
    st.fs = pafs.SubTreeFileSystem(f"/{uuid.uuid4().hex}", pafs.PyFileSystem(pafs.FSSpecHandler(MemoryFileSystem())))
    st.uri, st.root, st.local = "gs://bucket/kdbench", "bucket/kdbench", False
    return st


class GenerationMatchClient:
    """google.cloud.storage.Client as `_gcs_create` uses it, writing into the store's filesystem; an upload
    with if_generation_match=0 fails with GCS's 412 when a live object has the name."""

    def __init__(self, fs) -> None:
        self.fs, self.lock, self.uploads = fs, threading.Lock(), []

    def bucket(self, name):
        client = self

        class Blob:
            def __init__(self, key):
                self.path = f"{name}/{key}"

            def upload_from_string(self, data, if_generation_match=None):
                client.uploads.append((self.path, if_generation_match))
                with client.lock:  # the server decides atomically
                    exists = client.fs.get_file_info(self.path).type != pafs.FileType.NotFound
                    if if_generation_match == 0 and exists:
                        raise PreconditionFailed(f"At least one of the pre-conditions you specified did not "
                                                 f"hold: {self.path}")
                    with client.fs.open_output_stream(self.path) as f:
                        f.write(data)

        return type("Bucket", (), {"blob": staticmethod(Blob)})()


@pytest.fixture(params=["generation-match", "create-then-verify"])
def gcs(request, tmp_path, monkeypatch):
    st = memory_gcs_store(tmp_path)
    client = GenerationMatchClient(st.fs) if request.param == "generation-match" else None
    monkeypatch.setitem(store_module._GCS, "client", client)  # None: google-cloud-storage not installed
    return st, client


def race(st: Store, rel: str, n: int) -> list[int]:
    """n threads create `rel` at the same moment, each with bytes of its own; the indexes of the winners."""
    start, won = threading.Barrier(n), []

    def one(i: int) -> None:
        start.wait()
        if st.create(rel, f"writer {i}".encode()):
            won.append(i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won


def test_of_writers_racing_for_a_name_exactly_one_wins_and_its_bytes_stay(gcs):
    st, client = gcs
    for k in range(5):
        won = race(st, f"{LEASES}/job{k}/000000000001.json", 8)
        assert len(won) == 1, won
        assert st.read_bytes(f"{LEASES}/job{k}/000000000001.json") == f"writer {won[0]}".encode()
        assert not st.create(f"{LEASES}/job{k}/000000000001.json", b"late")  # taken: no one else, later
    if client is not None:  # exact: every upload (8 racers, 1 late) asked for generation 0
        assert len(client.uploads) == 5 * 9 and {m for _, m in client.uploads} == {0}


def test_leases_on_gs_one_holder_at_a_time_and_a_released_lease_is_free(gcs):
    st, _ = gcs
    a, b = Leases(st, ttl=60), Leases(st, ttl=60)
    assert a.acquire("job1") and not b.acquire("job1")
    assert b.acquire("job2") and not a.acquire("job2")
    a.release("job1")
    assert b.acquire("job1")
    b.close()
    a.close()
    assert st.list_files(LEASES) == []


def test_create_then_verify_answers_false_when_its_bytes_were_overwritten(tmp_path):
    """The loser of a race it did not see: another writer's upload landed after its check (within the settle
    time), so reading back shows their bytes, not its own."""
    st = memory_gcs_store(tmp_path)
    rel = f"{LEASES}/job/000000000001.json"
    original = st.write_bytes

    def write_then_overwritten(path, data):
        original(path, data)
        original(path, b"the other driver")  # its upload, a moment later

    st.write_bytes = write_then_overwritten
    assert not create_then_verify(st, rel, b"mine", settle=0.01)
    assert st.read_bytes(rel) == b"the other driver"
