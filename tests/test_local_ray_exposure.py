"""What a local Ray started by `kdbench run` shows to other users of the machine: no listening port beyond
loopback, and no object-store secret in a file or command line they can read.

Ray Tune hands AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY to its trial workers in their runtime environment,
and Ray's runtime-env agent logs that environment, values included, in a world-readable file of its session
folder; kdbench keeps those sessions in a folder only its user may enter."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import stat
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import pytest

from kdbench.store import Store
from kdbench.suite import expand, load_suite

from .conftest import write_suite
from .faults import finish, kdbench, result_count, session_processes

SUITE = """\
name: exposure
dataset: {name: synthetic, n_train: 2000, n_val: 200, n_test: 200, dim: 16, num_classes: 4}
recipe: {epochs: 6, batch_size: 64}
teachers: [{name: big, arch: mlp, widths: [128]}]
students: [{name: s8, arch: mlp, widths: [8]}]
methods: [kd]
seeds: [0, 1]
"""


def is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    mapped = getattr(addr, "ipv4_mapped", None)  # ::ffff:127.0.0.1, gRPC's dual-stack spelling
    return addr.is_loopback or (mapped is not None and mapped.is_loopback)


def listening(procs: list[psutil.Process]) -> set[tuple[str, str, int]]:
    """(process name, address, port) of every TCP/UDP socket these processes listen or wait on."""
    found = set()
    for p in procs:
        try:
            name = p.name()
            for c in p.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN or (c.type == socket.SOCK_DGRAM and not c.raddr):
                    found.add((name, c.laddr.ip, c.laddr.port))
        except psutil.Error:  # the process ended meanwhile
            continue
    return found


def others_can_read(path: Path) -> bool:
    """Whether a user other than the owner (and not root) can read the file: it is world-readable and every
    folder above it world-searchable."""
    if not os.stat(path).st_mode & stat.S_IROTH:
        return False
    return all(os.stat(parent).st_mode & stat.S_IXOTH for parent in path.parents)


def files_holding(root: Path, secret: bytes, since: float = 0.0) -> list[Path]:
    hits = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            try:
                info = os.lstat(path)
                if not stat.S_ISREG(info.st_mode) or info.st_mtime < since or info.st_size > 64 << 20:
                    continue
                if secret in path.read_bytes():
                    hits.append(path)
            except OSError:  # a socket, a file removed meanwhile, one of another user
                continue
    return hits


@pytest.mark.ray
@pytest.mark.slow
def test_a_local_ray_listens_on_loopback_only_and_keeps_object_store_secrets_from_other_users(tmp_path):
    secret = f"kdbench-fake-secret-{uuid.uuid4().hex}"
    # A short temp folder of its own (Ray's socket paths must stay under 108 bytes), as open as /tmp is.
    tmp = Path(tempfile.mkdtemp(prefix="kdbx-", dir="/tmp"))
    os.chmod(tmp, 0o755)
    env = {"TMPDIR": str(tmp), "AWS_ACCESS_KEY_ID": "AKIAKDBENCHFAKE00001", "AWS_SECRET_ACCESS_KEY": secret,
           "RAY_TMPDIR": ""}
    path = write_suite(tmp_path, SUITE)
    store = Store(tmp_path / "store")
    started = time.time()
    proc = kdbench("run", str(path), "--store", store.uri, "--num-cpus", "2", "-q", logs=tmp_path / "logs",
                   env=env)
    sockets: set[tuple[str, str, int]] = set()
    names: set[str] = set()
    leaked_cmdlines = []
    try:
        while proc.poll() is None:  # look at Ray's processes all the while: workers come and go
            procs = session_processes(proc.pid)
            sockets |= listening(procs)
            for p in procs:
                try:
                    names.add(p.name())
                    if secret in " ".join(p.cmdline()):  # /proc/PID/cmdline: readable by every user
                        leaked_cmdlines.append(p.name())
                except psutil.Error:
                    continue
            time.sleep(0.3)
    finally:
        rc, out, err = finish(proc)
    try:
        assert rc == 0, err[-3000:]
        assert result_count(store) == len(expand(load_suite(str(path))))  # trial workers did run

        # Ports: Ray's servers were seen (the test looked while they ran), all of them on loopback.
        assert {"gcs_server", "raylet"} <= names, names
        assert any(name == "raylet" for name, _, _ in sockets), sockets
        exposed = sorted(s for s in sockets if not is_loopback(s[1]))
        assert not exposed, f"listening beyond loopback (process, address, port): {exposed}"

        # Secrets: Ray's session lives in <TMPDIR>/kdbench-<uid>, a folder of this user only (0700) …
        base = tmp / f"kdbench-{os.getuid()}"
        info = os.stat(base)
        assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()
        sessions = [d for d in (base / "ray").iterdir() if d.name.startswith("session_2")]
        assert sessions and (base / "ray" / "session_latest").exists()
        # … so no file holding the secret is readable by another user, wherever it was written:
        # kdbench's temp folder, the store (results, plan, the embedded MLflow), Ray's default /tmp/ray.
        held = files_holding(tmp, secret.encode()) + files_holding(tmp_path, secret.encode())
        if os.path.isdir("/tmp/ray"):
            held += files_holding(Path("/tmp/ray"), secret.encode(), since=started)
        readable = [str(p) for p in held if others_can_read(p)]
        assert not readable, f"the secret is readable by other users in {readable}"
        assert all(base in p.parents for p in held), held  # only Ray's session logs hold it, in there
        assert not leaked_cmdlines, f"the secret is on the command line of {leaked_cmdlines}"
        assert secret not in out + err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
