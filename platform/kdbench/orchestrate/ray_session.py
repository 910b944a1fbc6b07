"""Starting or joining Ray: a local Ray by default, a cluster with `address`."""

from __future__ import annotations

import logging
import os
import socket


class ClusterError(RuntimeError):
    pass


def quiet_tune() -> None:
    """Tune's own file loggers and console reporter are not needed: kdbench records everything."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "100000")
    # With the file loggers off, Tune's end-of-run analysis warns that it found no result files.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)


def check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail in seconds, not minutes, when a cluster address does not answer (ray.init keeps retrying)."""
    if address == "auto" or address.startswith("local"):
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
    if address:  # before reusing a connection: an unreachable address is the user's error either way
        check_reachable(address)
    if ray.is_initialized():
        return ray
    # `kdbench` without -v sets ERROR: Ray's start-up notices are not the user's business (kdbench reports).
    level = logging.getLevelName(os.environ.get("KDBENCH_RAY_LOG_LEVEL", "WARNING").upper())
    kwargs = dict(include_dashboard=False, logging_level=level if isinstance(level, int) else logging.WARNING,
                  log_to_driver=False)
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=num_cpus, **kwargs)
    except (ConnectionError, TimeoutError, ValueError, RuntimeError) as e:
        raise ClusterError(f"cannot reach a Ray cluster at {address!r}: {e}") from None
    return ray


def check_resources(ray, cpus: float, gpus: float) -> None:
    """Fail before any work when no node of the cluster could ever run one job."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    fits = any(n["Resources"].get("CPU", 0) >= cpus and n["Resources"].get("GPU", 0) >= gpus for n in nodes)
    if not fits:
        have = [(n["Resources"].get("CPU", 0), n["Resources"].get("GPU", 0)) for n in nodes]
        raise ClusterError(f"no node can run a job needing {cpus} CPUs and {gpus} GPUs "
                           f"(nodes have (CPU, GPU): {have}); lower `resources:` in the suite")
