"""Where MLflow lives: a given server, or the embedded sqlite + artifact folder under the store."""

from __future__ import annotations

import logging
import os
import pathlib
import sqlite3

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


def create_sqlite_atomically(tracking_uri: str) -> None:
    """An embedded sqlite database that does not exist yet is created and migrated under a temporary name, then
    renamed into place: a driver killed during MLflow's first migration (seconds) leaves no half-made database
    that every later run would fail to open ("table … already exists")."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return
    db = tracking_uri[len(prefix):]
    if os.path.exists(db):
        return
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    tmp = f"{db}.tmp-{os.getpid()}"
    try:
        store = SqlAlchemyStore(f"{prefix}{tmp}", pathlib.Path(os.path.dirname(db), "artifacts").as_uri())
        store.engine.dispose()
        try:
            os.link(tmp, db)  # create-if-absent: a driver that won the race keeps its database (and its runs)
        except FileExistsError:
            pass
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def resolve(store: Store, tracking_uri: str | None) -> tuple[str, str | None]:
    """(tracking URI, artifact location for a new experiment or None for the server's default)."""
    if tracking_uri:
        return tracking_uri, None
    if not store.local:
        # Many workers and drivers cannot share one sqlite file on an object store.
        raise StoreError(f"store {store.uri} is not local: give an MLflow tracking server URI")
    relocate(store)
    return embedded_tracking_uri(store), embedded_artifact_root(store)


def relocate(store: Store) -> int:
    """After the store was copied or moved: point the embedded MLflow's experiments and runs at the artifact
    folder where the store now is (MLflow records absolute paths). Returns the number of runs updated.

    Only paths under an `…/mlflow/artifacts` folder that is not this store's are rewritten, in MLflow's own
    tables (`experiments.artifact_location`, `runs.artifact_uri`), in one transaction."""
    db = os.path.join(store.local_root, "mlflow", "mlflow.db")
    if not os.path.exists(db):
        return 0
    new = embedded_artifact_root(store)
    with sqlite3.connect(db, timeout=30) as con:
        try:
            old = [r[0] for r in con.execute("SELECT DISTINCT artifact_location FROM experiments")]
        except sqlite3.OperationalError:  # not (yet) an MLflow database
            return 0
        moved = 0
        for root in old:
            if not root or root == new or not root.startswith("file:") or not root.endswith("/mlflow/artifacts"):
                continue
            con.execute("UPDATE experiments SET artifact_location = ? WHERE artifact_location = ?", (new, root))
            moved += con.execute("UPDATE runs SET artifact_uri = ? || substr(artifact_uri, ?) "
                                 "WHERE substr(artifact_uri, 1, ?) = ?",
                                 (new, len(root) + 1, len(root) + 1, root + "/")).rowcount
            logging.getLogger("kdbench.track").info("MLflow artifacts: %s -> %s (the store moved)", root, new)
    return moved
