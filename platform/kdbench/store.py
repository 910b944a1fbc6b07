"""The store: one URI (a local folder, or s3://… / gs://… through pyarrow.fs) holding everything.

    <store>/artifacts/<job_id>/…   checkpoints (weights only), the selected model, history
    <store>/results/<id[:2]>/<job_id>.parquet   one row per finished or failed job
    <store>/plans/<suite>/…        each suite's plan: its job ids and the names it gives them
    <store>/mlflow/                the embedded MLflow (sqlite + artifacts) when no server is given

Every write is whole or absent: a local file is written beside its target and renamed over it;
an object store has no rename, so a file goes up in one PutObject (multipart only above the part
size, ~10 MB, and then committed by one CompleteMultipartUpload) and is visible only once complete.

Object stores take their credentials from the environment (the SDKs' usual chain: AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN or ~/.aws or an instance role; GOOGLE_APPLICATION_CREDENTIALS
for gs://). An S3-compatible server (MinIO, Ceph, moto) is named by KDBENCH_S3_ENDPOINT, else
AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, e.g. http://127.0.0.1:9000; the region by AWS_REGION or
AWS_DEFAULT_REGION. The same variables must reach every Ray worker (`kdbench submit` passes them on).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
import uuid
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from kdbench import paths

# Environment variables that configure object-store access, in the order they are looked up.
S3_ENDPOINT_VARS = ("KDBENCH_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
S3_ENV_VARS = (*S3_ENDPOINT_VARS, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
               "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE")
GCS_ENV_VARS = ("GOOGLE_APPLICATION_CREDENTIALS",)  # a key file's path: the file must be there on every node
STORE_ENV_VARS = (*S3_ENV_VARS, *GCS_ENV_VARS)


class StoreError(ValueError):
    pass


class StoreFullError(StoreError):
    """The store's disk (or quota) is full: one line naming the store and the file, nothing left behind."""

    def __init__(self, store: str, rel: str, e: OSError) -> None:
        super().__init__(f"the store {store} is full ({e.strerror or e}) writing {rel}: free space there and "
                         "run the same command again (finished jobs are kept)")

    @classmethod
    def from_text(cls, message: str) -> StoreFullError:
        """The error a worker reported (as text: exceptions do not cross Ray as such here)."""
        error = cls.__new__(cls)
        ValueError.__init__(error, message)
        return error


def full_disk(e: BaseException, store: str = "") -> StoreFullError | None:
    """The full-disk error behind `e` (raised here or by a library writing to the store), if any."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, StoreFullError):
            return e
        if isinstance(e, OSError) and e.errno in _FULL:
            return StoreFullError(store, getattr(e, "filename", None) or "a file", e)
        e = e.__cause__ or e.__context__
    return None


_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class Store:
    def __init__(self, uri: str | os.PathLike) -> None:
        uri = os.fspath(uri)
        if not uri.strip() or (uri.split("://", 1)[-1].strip("/") == "" and "://" in uri):
            raise StoreError(f"store {uri!r} names no folder or bucket")
        # Local paths are made absolute: Ray workers run in other directories than the driver.
        self.uri = uri if "://" in uri else os.path.abspath(uri)
        if "://" in uri and not uri.startswith(("file://", "s3://", "gs://", "gcs://", "hdfs://")):
            scheme = uri.split("://", 1)[0]
            raise StoreError(f"unsupported store URI scheme '{scheme}://' in {uri!r}: use a local path, "
                             "file://, s3:// or gs://")
        if uri.startswith("s3://") and "?" not in uri:  # query options in the URI: pyarrow parses them
            self.fs, self.root = s3_filesystem(), uri[len("s3://"):].rstrip("/")
        elif "://" in uri:
            try:
                self.fs, self.root = pafs.FileSystem.from_uri(uri)
            except (ValueError, OSError) as e:  # pyarrow's ArrowInvalid is a ValueError
                raise StoreError(f"store {uri!r}: {(str(e).splitlines() or [type(e).__name__])[0]}") from None
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
        if not self.local:  # no folders to make (they would be marker objects), no rename to do
            with self.fs.open_output_stream(target) as f:  # one upload: visible only when complete
                f.write(data)
            return
        tmp = self._temp(rel, data)
        try:
            os.replace(tmp, target)  # atomic on POSIX
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def create(self, rel: str, data: bytes) -> bool:
        """Write `rel` only if it does not exist yet, atomically: True if this call created it.

        Local (and NFS) stores: the data goes to a temp file that is hard-linked to the target (a link
        fails if the target exists, and the target is never seen half-written). S3: one PutObject with
        `If-None-Match: *` (S3's conditional write, which MinIO and moto honour too). GCS: an upload with
        `ifGenerationMatch=0` through google-cloud-storage when it is installed. Elsewhere (gs:// without
        it, hdfs://): create-then-verify, best effort (`create_then_verify`)."""
        if self.uri.startswith("s3://"):
            return _s3_create(self, rel, data)
        if self.uri.startswith(("gs://", "gcs://")) and gcs_client() is not None:
            return _gcs_create(self, rel, data)
        if not self.local:
            _warn_once(f"{self.uri}: no create-if-absent write for this store here (for gs://, pip install "
                       "google-cloud-storage); job leases are best effort")
            return create_then_verify(self, rel, data)
        tmp = self._temp(rel, data)
        try:
            os.link(tmp, self.path(rel))
            return True
        except FileExistsError:
            return False
        except OSError as e:  # a filesystem without hard links (some FUSE/SMB mounts): O_EXCL, then the data
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            try:
                fd = os.open(self.path(rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return True
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def _temp(self, rel: str, data: bytes) -> str:
        """`data` in a fsynced temp file beside `rel` (local stores); a failure leaves no temp file behind
        and a full disk is one StoreFullError line."""
        parent = self.path(rel).rsplit("/", 1)[0]
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
        try:
            self.fs.create_dir(parent, recursive=True)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(e, OSError) and e.errno in _FULL:
                raise StoreFullError(self.uri, rel, e) from None
            raise
        return tmp

    def move(self, rel: str, dest: str) -> None:
        """Move a file within the store (a rename locally; copy then delete on object stores)."""
        if self.local:
            self.fs.create_dir(self.path(dest).rsplit("/", 1)[0], recursive=True)
        self.fs.move(self.path(rel), self.path(dest))

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
        for attempt in range(3):
            try:
                infos = self.fs.get_file_info(selector)
                break
            except FileNotFoundError:  # a folder made or removed by another process mid-listing (local disks)
                if attempt == 2:
                    return []
        return sorted(i.path[base:] for i in infos
                      if i.type == pafs.FileType.File and i.path.endswith(suffix)
                      and not i.base_name.startswith(".tmp-"))

    @staticmethod
    def artifact(job_id: str, name: str) -> str:
        return paths.artifact(job_id, name)


def s3_endpoint() -> str | None:
    """The S3-compatible endpoint URL from the environment, if one is set."""
    return next((os.environ[v] for v in S3_ENDPOINT_VARS if os.environ.get(v)), None)


def s3_filesystem() -> pafs.S3FileSystem:
    """An S3 filesystem configured from the environment (endpoint, region; credentials by the SDK).

    `allow_delayed_open` makes a small file one PutObject on close instead of a multipart upload of
    one part (three requests); either way the object appears only when the upload completes."""
    kwargs: dict = {"allow_delayed_open": True}
    endpoint = s3_endpoint()
    if endpoint:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        if not parts.netloc:
            raise StoreError(f"S3 endpoint {endpoint!r} is not a URL such as http://127.0.0.1:9000")
        kwargs.update(endpoint_override=parts.netloc, scheme=parts.scheme or "https")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        kwargs["region"] = region
    return pafs.S3FileSystem(**kwargs)


_S3_CLIENTS: dict = {}
_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        logging.getLogger("kdbench.store").warning(message)


def _s3_create(store: Store, rel: str, data: bytes) -> bool:
    """A conditional PutObject (`If-None-Match: *`) through boto3 (pyarrow cannot send the header)."""
    try:
        import boto3
        from botocore.exceptions import ClientError
    except ImportError:
        raise StoreError("job leases on an s3:// store need boto3 (pip install boto3)") from None
    bucket, _, key = store.path(rel).partition("/")
    endpoint = s3_endpoint()
    if endpoint and "://" not in endpoint:
        endpoint = f"https://{endpoint}"
    key_ = (endpoint, os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    client = _S3_CLIENTS.get(key_)
    if client is None:  # building a client costs ~50 ms: one per endpoint and region
        client = _S3_CLIENTS[key_] = boto3.client("s3", endpoint_url=key_[0], region_name=key_[1])
    try:
        client.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
        return True
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict") \
                or e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (409, 412):
            return False
        raise


def store_env(uri: str) -> dict[str, str]:
    """The variables set here that Ray workers on other machines need to reach the store `uri`: the S3 ones
    for s3://, the GCS one for gs://, none for a local path (or hdfs://, configured on the nodes)."""
    if uri.startswith("s3://"):
        names = S3_ENV_VARS
    elif uri.startswith(("gs://", "gcs://")):
        names = GCS_ENV_VARS
    else:
        names = ()
    return {v: os.environ[v] for v in names if os.environ.get(v)}


SETTLE_S = 0.25  # create-then-verify: how long a writer waits before reading its file back


def create_then_verify(store: Store, rel: str, data: bytes, settle: float = SETTLE_S) -> bool:
    """Best-effort create-if-absent for a store without a conditional write: check, write, wait, read back.

    Of writers that all found `rel` absent, the last upload wins and each reads the winner's bytes after
    `settle` seconds, so only the winner answers True — provided `data` is unique to the writer (a lease
    names its holder) and no writer takes longer than `settle` between its check and its write (one
    request; a writer stalled longer than that, e.g. frozen by the OS, can still win alongside another)."""
    if store.exists(rel):
        return False
    store.write_bytes(rel, data)
    time.sleep(settle)
    return store.read_bytes(rel) == data


def gcs_client():
    """A google-cloud-storage client (credentials and emulator from the environment), or None without
    the library."""
    if "client" not in _GCS:
        try:
            from google.cloud import storage
        except ImportError:
            _GCS["client"] = None
        else:
            try:
                _GCS["client"] = storage.Client()
            except Exception as e:  # no credentials or project found in the environment
                raise StoreError(f"google-cloud-storage cannot reach GCS for job leases: "
                                 f"{(str(e).splitlines() or [type(e).__name__])[0]}") from None
    return _GCS["client"]


_GCS: dict = {}


def _gcs_create(store: Store, rel: str, data: bytes) -> bool:
    """An upload with the precondition `ifGenerationMatch=0` (no live object of that name): GCS refuses
    every other writer of the same name with 412."""
    from google.api_core.exceptions import PreconditionFailed

    bucket, _, key = store.path(rel).partition("/")
    try:
        gcs_client().bucket(bucket).blob(key).upload_from_string(data, if_generation_match=0)
        return True
    except PreconditionFailed:
        return False
