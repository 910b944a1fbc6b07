"""Starting or joining Ray: a local Ray by default, a cluster with `address`."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import stat
import tempfile
import threading


class ClusterError(RuntimeError):
    pass


def quiet_tune() -> None:
    """Tune's own file loggers and console reporter are not needed: kdbench records everything."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "100000")
    # With the file loggers off, Tune's end-of-run analysis warns that it found no result files.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    # kdbench never restores Tune's experiment state (a rerun resumes from the store): a failed save of it
    # (a full disk, where kdbench then stops with one line) is not worth Tune's traceback.
    logging.getLogger("ray.tune.execution.experiment_state").setLevel(logging.CRITICAL)


def check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail in seconds, not minutes, when a cluster address does not answer (ray.init keeps retrying)."""
    if address in ("auto", "local"):  # "localhost:6379" is an address like any other
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"cluster address {address!r} is not HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise ClusterError(f"cannot reach a Ray cluster at {address!r}: {e.strerror or e}") from None


def init_ray(address: str | None = None, num_cpus: int | None = None):
    """Connect to Ray (once per process); returns the `ray` module."""
    import ray

    quiet_tune()
    if address == "local":  # Ray's name for a new local Ray: the same as none
        address = None
    if address:  # before reusing a connection: an unreachable address is the user's error either way
        check_reachable(address)
    if ray.is_initialized():
        return ray
    # `kdbench` without -v sets ERROR: Ray's start-up notices are not the user's business (kdbench reports).
    level = logging.getLevelName(os.environ.get("KDBENCH_RAY_LOG_LEVEL", "WARNING").upper())
    kwargs = dict(include_dashboard=False, logging_level=level if isinstance(level, int) else logging.WARNING,
                  log_to_driver=False)
    if address:
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, TimeoutError, ValueError, RuntimeError) as e:
            raise ClusterError(f"cannot reach a Ray cluster at {address!r}: {e}") from None
        tune_propagates_credentials(True)
        terminate_like_interrupt()
        return ray
    try:
        with loopback_only():
            ray.init(num_cpus=num_cpus, _temp_dir=private_temp_dir(), **kwargs)
        tune_propagates_credentials(False)
        terminate_like_interrupt()  # ray.init installs Ray's own SIGTERM handler (a stack dump, then exit)
    except ClusterError:
        raise
    except Exception as e:  # e.g. a start-up timeout on an overloaded machine: stop what did start
        with contextlib.suppress(Exception):
            ray.shutdown()
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ClusterError(f"the local Ray did not start ({type(e).__name__}: {first}); its processes were "
                           "stopped: run the same command again") from None
    return ray


def terminate_like_interrupt() -> None:
    """SIGTERM (`kill`, a batch scheduler's stop, `kdbench stop`) does what Ctrl-C does: whatever handles
    SIGINT at that moment (Ray Tune's graceful stop while the suite runs, else a KeyboardInterrupt) handles
    it. Only the main thread may set handlers: elsewhere (a driver embedded in a thread) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        return

    def on_term(signum, frame):
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)


def private_temp_dir() -> str | None:
    """Where the local Ray keeps its sessions: <tmp>/kdbench-<uid>/ray, inside a folder only this user may
    enter (0700). Ray makes its own folders world-readable and logs worker environments (object-store
    credentials included) there; /tmp/ray would expose them to every user of the machine. RAY_TMPDIR, when
    set, is the user's choice and wins."""
    if os.environ.get("RAY_TMPDIR"):
        return None
    base = os.path.join(tempfile.gettempdir(), f"kdbench-{os.getuid()}")
    os.makedirs(base, mode=0o700, exist_ok=True)
    info = os.lstat(base)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise ClusterError(f"{base} is not a folder of this user: remove it (or set RAY_TMPDIR) and run again")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(base, 0o700)
    return os.path.join(base, "ray")


@contextlib.contextmanager
def loopback_only():
    """Start a local Ray with every port on loopback.

    Ray 2.60 turns a node IP of 127.0.0.1 given to `ray.init(_node_ip_address=…)` or `ray start
    --node-ip-address` into this machine's outward address, and then binds its servers (GCS, raylet, the
    workers' gRPC, the agents) to all interfaces. Its single-machine mode (the one it uses on macOS and
    Windows, `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`) takes 127.0.0.1 as the node IP, and with it every server
    binds to loopback. Ray reads the variable when it is imported, so its constant is set as well, for the
    start only: a later connection to a real cluster from this process is unaffected. A value the user set
    wins."""
    from ray._private import ray_constants

    var = ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR
    if var in os.environ:
        yield
        return
    before = ray_constants.ENABLE_RAY_CLUSTER
    os.environ[var] = "0"  # the processes Ray starts now (they inherit it) agree
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        os.environ.pop(var, None)
        ray_constants.ENABLE_RAY_CLUSTER = before


# Variables Ray Tune copies from the driver into every trial's runtime environment (ray.tune's class_cache).
TUNE_PROPAGATED_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN")


def tune_propagates_credentials(on: bool) -> None:
    """Whether Ray Tune copies the AWS credentials into each trial's runtime environment.

    Tune does so for workers on other machines; Ray then writes that environment, values included, into the
    runtime-env agent's log and onto each worker's command line (`--serialized-runtime-env-context=…`),
    which every user of the machine can read with `ps`. A local Ray's workers are started by its raylet,
    which inherited the driver's environment: they have the credentials already, so kdbench stops the copy
    for a local Ray and restores it for a cluster."""
    try:
        from ray.tune.execution import class_cache
    except ImportError:  # Ray without Tune: nothing copies them
        return
    names = class_cache.ENV_VARS_TO_PROPAGATE  # a set Tune reads at each trainable's registration
    if on:
        names.update(TUNE_PROPAGATED_CREDENTIALS)
    else:
        names.difference_update(TUNE_PROPAGATED_CREDENTIALS)


def check_resources(ray, cpus: float, gpus: float) -> None:
    """Fail before any work when no node of the cluster could ever run one job."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    fits = any(n["Resources"].get("CPU", 0) >= cpus and n["Resources"].get("GPU", 0) >= gpus for n in nodes)
    if not fits:
        have = [(n["Resources"].get("CPU", 0), n["Resources"].get("GPU", 0)) for n in nodes]
        raise ClusterError(f"no node can run a job needing {cpus} CPUs and {gpus} GPUs "
                           f"(nodes have (CPU, GPU): {have}); lower `resources:` in the suite")
