"""The store: one URI (a local folder, or s3://… / gs://… through pyarrow.fs) holding everything.

    <store>/artifacts/<job_id>/…   checkpoints (weights only), the selected model, history
    <store>/results/<id[:2]>/<job_id>.parquet   one row per finished or failed job
    <store>/plans/<suite>/…        each suite's plan: its job ids and the names it gives them
    <store>/mlflow/                the embedded MLflow (sqlite + artifacts) when no server is given

Every write is whole or absent: a local file is written beside its target and renamed over it;
an object-store upload is one request, visible only once complete.
"""

from __future__ import annotations

import os
import uuid

import pyarrow.fs as pafs


class StoreError(ValueError):
    pass


class Store:
    def __init__(self, uri: str | os.PathLike) -> None:
        uri = os.fspath(uri)
        # Local paths are made absolute: Ray workers run in other directories than the driver.
        self.uri = uri if "://" in uri else os.path.abspath(uri)
        if "://" in uri and not uri.startswith(("file://", "s3://", "gs://", "gcs://", "hdfs://")):
            scheme = uri.split("://", 1)[0]
            raise StoreError(f"unsupported store URI scheme '{scheme}://' in {uri!r}: use a local path, "
                             "file://, s3:// or gs://")
        if "://" in uri:
            self.fs, self.root = pafs.FileSystem.from_uri(uri)
        else:
            self.fs, self.root = pafs.LocalFileSystem(), os.path.abspath(uri)
        self.local = isinstance(self.fs, pafs.LocalFileSystem)

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    @property
    def local_root(self) -> str:
        if not self.local:
            raise StoreError(f"{self.uri} is not a local store")
        return self.root

    def write_bytes(self, rel: str, data: bytes) -> None:
        target = self.path(rel)
        parent = target.rsplit("/", 1)[0]
        self.fs.create_dir(parent, recursive=True)
        if not self.local:
            with self.fs.open_output_stream(target) as f:  # one upload: visible only when complete
                f.write(data)
            return
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)  # atomic on POSIX

    def read_bytes(self, rel: str) -> bytes | None:
        try:
            with self.fs.open_input_stream(self.path(rel)) as f:
                return f.read()
        except (FileNotFoundError, OSError) as e:
            if isinstance(e, FileNotFoundError) or "not found" in str(e).lower() or "no such" in str(e).lower():
                return None
            raise

    def delete(self, rel: str) -> None:
        """Remove one file if present."""
        try:
            self.fs.delete_file(self.path(rel))
        except FileNotFoundError:
            pass

    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self.path(rel)).type != pafs.FileType.NotFound

    def list_files(self, rel: str, suffix: str = "") -> list[str]:
        """Paths (relative to the store root) of the files under `rel`, recursively."""
        selector = pafs.FileSelector(self.path(rel), recursive=True, allow_not_found=True)
        base = len(self.root.rstrip("/")) + 1
        return sorted(i.path[base:] for i in self.fs.get_file_info(selector)
                      if i.type == pafs.FileType.File and i.path.endswith(suffix)
                      and not i.base_name.startswith(".tmp-"))

    @staticmethod
    def artifact(job_id: str, name: str) -> str:
        return f"artifacts/{job_id}/{name}"
