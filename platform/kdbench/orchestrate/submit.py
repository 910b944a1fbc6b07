"""Submitting a suite to a Ray cluster through the Ray Jobs API (`kdbench submit/status/logs/stop`).

The submission is a Ray job whose entrypoint is `python -m kdbench.cli run SUITE --address auto …` on
the cluster's head node. Its runtime environment carries what the cluster cannot know:

- `py_modules`: this machine's kdbench package, so the cluster runs the code that validated the suite
  (its dependencies — torch, Ray, MLflow … — must be installed on the cluster, e.g. the kdbench image);
- `working_dir`: a small staging folder holding the suite file, its reference CSV and the suite's
  plugin modules (never the user's whole folder: Ray caps a working_dir at 100 MiB, and a store or a
  virtualenv beside the suite would be uploaded with it);
- `env_vars`: the variables set here that the store needs (kdbench.store.store_env: endpoint, region and
  credentials for s3://, GOOGLE_APPLICATION_CREDENTIALS for gs://, nothing for a shared path), so the
  workers reach the same store as this machine would. Their values are never printed (the submission
  shows their names); on the cluster they live in the job's runtime environment, which Ray keeps in its
  GCS and logs on each node (keep the nodes' Ray folders to their own user).

Anyone who can reach a cluster's Jobs API can run arbitrary code on it: keep the dashboard on
loopback or behind authentication (Ray's token authentication: RAY_AUTH_MODE=token and RAY_AUTH_TOKEN
or ~/.ray/auth_token, which the client sends along).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shlex
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kdbench.store import Store, store_env
from kdbench.suite.load import Suite

from .ray_session import ClusterError, check_reachable

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # .../kdbench


def connect(address: str, timeout: float = 10.0):
    """A JobSubmissionClient for the dashboard at `address`, or a ClusterError within ~`timeout` s."""
    if not re.match(r"^https?://", address):
        raise ClusterError(f"Ray Jobs address {address!r} must be the dashboard's http(s)://HOST:PORT "
                           f"(e.g. {DEFAULT_ADDRESS})")
    check_reachable(address, timeout)
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except Exception as e:  # refused version check, auth failure, not a Ray dashboard …
        raise ClusterError(f"cannot use the Ray Jobs API at {address!r}: {_one_line(e)}") from None


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text[:500] or type(e).__name__


def _call(what: str, fn: Callable, *args):
    """Run one client call; a failed request (e.g. an unknown job id) becomes one clear line."""
    try:
        return fn(*args)
    except (RuntimeError, ConnectionError, ValueError) as e:
        raise ClusterError(f"{what}: {_one_line(e)}") from None


@dataclass(frozen=True)
class Submission:
    job_id: str
    entrypoint: str
    runtime_env: dict


def check_store(store: str, tracking_uri: str | None, track: bool) -> str:
    """The store as the cluster must see it: an object-store URI or an absolute (shared) path."""
    st = Store(store)  # an unsupported scheme fails here
    if "://" not in store and not os.path.isabs(store):
        raise ClusterError(f"store {store!r} is a relative path: on a cluster give s3://…, gs://… or an "
                           f"absolute path that every node mounts (e.g. {st.uri})")
    if track and not tracking_uri and not st.local:
        raise ClusterError(f"store {store} is not local: give --tracking-uri (an MLflow server) or --no-track")
    return st.uri


def stage(suite: Suite, folder: Path) -> str:
    """Copy the suite file, its reference CSV and its plugin modules into `folder` (the job's
    working_dir); returns the suite's path relative to it."""
    suite_path = Path(suite.path).resolve()
    shutil.copy2(suite_path, folder / suite_path.name)
    if suite.reference:
        rel = os.path.relpath(suite.reference, suite_path.parent)
        if rel.startswith(".."):
            raise ClusterError(f"{suite.path}: reference {suite.reference} is outside the suite's folder; "
                               "move it beside the suite to submit it")
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(suite.reference, folder / rel)
    for name in suite.plugins:
        if os.path.isabs(name):  # a plugin file of the suite's folder: the same place relative to the suite
            rel = os.path.relpath(name, suite_path.parent)
            if rel.startswith(".."):
                raise ClusterError(f"{suite.path}: plugin {name} is outside the suite's folder; "
                                   "move it beside the suite to submit it")
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(name, folder / rel)
        else:
            _stage_module(name, folder)
    return suite_path.name


def _stage_module(name: str, folder: Path) -> None:
    """Copy module `a.b.c` as a/__init__.py, a/b/__init__.py and a/b/c.py (or the package a/b/c/)."""
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        spec = importlib.util.find_spec(".".join(parts[:i]))
        if spec is None or spec.origin is None:
            raise ClusterError(f"plugin module {name!r}: cannot find its source to ship to the cluster")
        target = folder.joinpath(*parts[:i])
        if spec.submodule_search_locations is not None:  # a package
            if i == len(parts):
                shutil.copytree(os.path.dirname(spec.origin), target, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                target.mkdir(parents=True, exist_ok=True)
                if spec.origin.endswith("__init__.py"):
                    shutil.copy2(spec.origin, target / "__init__.py")
        else:
            shutil.copy2(spec.origin, target.with_suffix(".py"))


def submission_id(suite_name: str) -> str:
    return f"kdbench-{re.sub(r'[^A-Za-z0-9_-]+', '-', suite_name)[:40]}-{uuid.uuid4().hex[:8]}"


def submit(client, suite: Suite, store: str, tracking_uri: str | None, track: bool = True) -> Submission:
    """Stage the suite and submit it; the staging folder is uploaded by the client and then removed."""
    store_uri = check_store(store, tracking_uri, track)
    with tempfile.TemporaryDirectory(prefix="kdbench-submit-") as tmp:
        rel = stage(suite, Path(tmp))
        args = ["--address", "auto", "--store", store_uri]
        if not track:
            args.append("--no-track")
        elif tracking_uri:
            args += ["--tracking-uri", tracking_uri]
        # The suite by absolute path ($PWD is the unpacked working_dir, expanded by the job's shell):
        # the driver's cwd may be unpacked anew while it runs, and nothing after loading should need it.
        entrypoint = f'python -m kdbench.cli run "$PWD"/{shlex.quote(rel)} {shlex.join(args)}'
        runtime_env = {"working_dir": tmp, "py_modules": [str(PACKAGE_DIR)],
                       "excludes": ["__pycache__", "*.pyc"]}
        env = store_env(store_uri)
        if env:
            runtime_env["env_vars"] = env
        job_id = _call("submitting the suite", lambda: client.submit_job(
            entrypoint=entrypoint, runtime_env=runtime_env, submission_id=submission_id(suite.name),
            metadata={"kdbench.suite": suite.name, "kdbench.store": store_uri}))
    shown = {**runtime_env, "working_dir": f"<{rel} and its plugins>"}
    if env:
        shown["env_vars"] = sorted(env)  # names only: values may be secrets
    return Submission(job_id, entrypoint, shown)


def status(client, job_id: str):
    """The job's JobDetails (status, message, times, metadata)."""
    return _call(f"job {job_id}", client.get_job_info, job_id)


def jobs(client) -> list:
    return sorted(_call("listing jobs", client.list_jobs), key=lambda j: j.start_time or 0)


def logs(client, job_id: str) -> str:
    return _call(f"logs of job {job_id}", client.get_job_logs, job_id)


def follow(client, job_id: str, write: Callable[[str], None]) -> None:
    """Stream the job's logs until it ends (Ray's tail_job_logs closes when the job does)."""
    status(client, job_id)  # an unknown id fails here, clearly

    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            write(chunk)

    try:
        asyncio.run(tail())
    except (RuntimeError, ConnectionError) as e:
        raise ClusterError(f"logs of job {job_id}: {_one_line(e)}") from None


def stop(client, job_id: str) -> bool:
    """Ask Ray to stop the job; False when it had already ended."""
    status(client, job_id)
    return _call(f"stopping job {job_id}", client.stop_job, job_id)
