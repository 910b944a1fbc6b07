"""Where MLflow lives: a given server, or the embedded sqlite + artifact folder under the store."""

from __future__ import annotations

import os
import pathlib

from kdbench.store import Store, StoreError


def _embedded_dir(store: Store) -> str:
    folder = os.path.join(store.local_root, "mlflow")
    os.makedirs(folder, exist_ok=True)
    return folder


def embedded_tracking_uri(store: Store) -> str:
    # local_root is absolute, so this is sqlite:////abs/path (four slashes), independent of the cwd.
    return f"sqlite:///{_embedded_dir(store)}/mlflow.db"


def embedded_artifact_root(store: Store) -> str:
    # Given explicitly: a sqlite store's default artifact root is ./mlruns relative to the cwd.
    return pathlib.Path(_embedded_dir(store), "artifacts").as_uri()


def resolve(store: Store, tracking_uri: str | None) -> tuple[str, str | None]:
    """(tracking URI, artifact location for a new experiment or None for the server's default)."""
    if tracking_uri:
        return tracking_uri, None
    if not store.local:
        # Many workers and drivers cannot share one sqlite file on an object store.
        raise StoreError(f"store {store.uri} is not local: give an MLflow tracking server URI")
    return embedded_tracking_uri(store), embedded_artifact_root(store)
