"""Where a job reads shards from: a local folder in place, or an object store through a bounded local cache.

A URI root (s3://, gs://, any pyarrow.fs URI) is read through `pyarrow.fs` (kdbench.store configures S3 from
the environment as the store does). A shard is fetched whole into `<cache_dir>/<hash of the root>/`, checked
against the manifest's size and SHA-256, and renamed into place (so a reader never sees half a file); the
cache holds at most `cache_mb` megabytes, the least recently used shards leaving first (a shard a worker still
has memory-mapped stays readable until it is closed). DataLoader workers share the cache; a per-shard lock
makes one of them fetch a shard while the others wait for it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from datetime import timedelta
from pathlib import Path

import pyarrow.fs as pafs

from .files import DatasetCorrupt, DatasetMissing
from .shard_format import ShardFile, sha256_file

GCS_RETRY_S = 20  # how long a gs:// read retries before the data counts as unreadable


def is_uri(root: str) -> bool:
    return "://" in root and not root.startswith("file://")


def default_cache_dir() -> str:
    return os.environ.get("KDBENCH_SHARD_CACHE") or os.path.join(tempfile.gettempdir(), "kdbench-shards")


class ShardSource:
    """A shards folder (local or URI) and, for a URI, its local cache. Picklable: a worker opens its own fs."""

    def __init__(self, root: str, cache_dir: str | None = None, cache_mb: float = 10240.0) -> None:
        self.root = root[len("file://"):] if root.startswith("file://") else root
        self.remote = is_uri(self.root)
        self.cache_mb = cache_mb
        digest = hashlib.sha256(self.root.encode()).hexdigest()[:16]
        self.cache = Path(cache_dir or default_cache_dir()) / digest
        self._fs = None

    def __getstate__(self):
        return {**self.__dict__, "_fs": None}  # a filesystem handle does not cross processes

    def _filesystem(self):
        if self._fs is None:
            from kdbench.store import Store

            store = Store(self.root)
            self._fs, self._base = store.fs, store.root
            if self.root.startswith(("gs://", "gcs://")):  # pyarrow retries GCS for 15 minutes by default: a
                # machine without credentials or network (a laptop validating) would seem to hang
                self._fs = pafs.GcsFileSystem(retry_time_limit=timedelta(seconds=GCS_RETRY_S))
        return self._fs

    def _remote_path(self, rel: str) -> str:
        self._filesystem()
        return f"{self._base.rstrip('/')}/{rel}"

    def read_bytes(self, rel: str) -> bytes:
        """A small file of the folder (the manifest, a labels file); DatasetMissing if absent."""
        if not self.remote:
            path = Path(self.root) / rel
            if not path.is_file():
                raise DatasetMissing(f"no {path}: not a shards folder (write one with `kdbench shards`)")
            return path.read_bytes()
        try:
            with self._filesystem().open_input_stream(self._remote_path(rel)) as f:
                return f.read()
        except (FileNotFoundError, OSError) as e:  # pyarrow: FileNotFoundError, or OSError for access errors
            raise DatasetMissing(f"cannot read {self.root.rstrip('/')}/{rel}: {_first(e)}") from None

    def local(self, shard: ShardFile) -> str:
        """A local path holding `shard`: the file itself, or its copy in the cache (fetched if absent)."""
        if not self.remote:
            path = Path(self.root) / shard.file
            if not path.is_file() or path.stat().st_size != shard.bytes:
                raise DatasetCorrupt(f"{path}: missing or not the {shard.bytes} bytes the manifest records")
            return str(path)
        self.cache.mkdir(parents=True, exist_ok=True)
        path = self.cache / shard.file
        if _fresh(path, shard):
            os.utime(path)  # recently used
            return str(path)
        with open(self.cache / f".{shard.file}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one worker fetches, the others wait and find it
            if not _fresh(path, shard):
                self._fetch(shard, path)
                self._evict(keep=path)
        return str(path)

    def _fetch(self, shard: ShardFile, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        try:
            with self._filesystem().open_input_stream(self._remote_path(shard.file)) as src, open(tmp, "wb") as dst:
                while block := src.read(8 << 20):
                    dst.write(block)
        except (FileNotFoundError, OSError) as e:
            tmp.unlink(missing_ok=True)
            raise DatasetMissing(f"cannot fetch {self.root.rstrip('/')}/{shard.file}: {_first(e)}") from None
        if tmp.stat().st_size != shard.bytes or sha256_file(tmp) != shard.sha256:
            tmp.unlink()
            raise DatasetCorrupt(f"{self.root.rstrip('/')}/{shard.file}: its bytes do not match the manifest's "
                                 "size and SHA-256 (rewrite the shards, or the upload is incomplete)")
        os.replace(tmp, path)

    def _evict(self, keep: Path) -> None:
        """Remove the least recently used shards until the cache holds at most `cache_mb` MB."""
        entries = []
        for p in self.cache.glob("*.parquet"):
            try:
                st = p.stat()
            except FileNotFoundError:  # another worker evicted it
                continue
            entries.append((st.st_mtime, st.st_size, p))
        total = sum(size for _, size, _ in entries)
        for _, size, p in sorted(entries):
            if total <= self.cache_mb * 1e6:
                break
            if p != keep:
                p.unlink(missing_ok=True)
                total -= size

    def cached_files(self) -> list[str]:
        return sorted(p.name for p in self.cache.glob("*.parquet")) if self.remote else []


def _first(e: BaseException, most: int = 200) -> str:
    """An error's first line, cut to `most` characters (cloud SDKs' messages run to paragraphs)."""
    line = (str(e).splitlines() or [type(e).__name__])[0]
    return line if len(line) <= most else line[:most - 1] + "…"


def _fresh(path: Path, shard: ShardFile) -> bool:
    # Files enter the cache only after their checksum matched (renamed into place), so the size suffices here.
    try:
        return path.stat().st_size == shard.bytes
    except FileNotFoundError:
        return False
