"""Commands on MLflow: `ui` (the embedded server, with each suite's runs view) and `sync` (MLflow made equal to
the results store)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from .common import (
    DEFAULT_STORE,
    StoreOpt,
    TrackingOpt,
    _guard,
    _positive,
    app,
    fail,
    out,
)

if TYPE_CHECKING:
    pass


@app.command()
def ui(store: StoreOpt = DEFAULT_STORE, port: int = 5000,
       host: Annotated[str, typer.Option(help="Interface to bind; loopback unless you mean it.")] = "127.0.0.1",
       ) -> None:
    """Serve the embedded MLflow of the store (MLflow's UI) on 127.0.0.1."""
    _positive("--port", port, whole=True, most=65535)
    from kdbench.store import Store
    from kdbench.track.uri import embedded_artifact_root, embedded_tracking_uri, relocate

    st = _guard(Store, store)
    if not st.exists("mlflow"):
        raise fail(f"no embedded MLflow in {store}: run a suite first")
    relocate(st)  # a copied or moved store: its runs' artifacts are where the store is now
    args = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", embedded_tracking_uri(st),
            "--default-artifact-root", embedded_artifact_root(st), "--host", host, "--port", str(port)]
    out.print(f"MLflow UI on http://{host}:{port} (Ctrl-C to stop)")
    for name, view in _runs_views(embedded_tracking_uri(st)):
        out.print(f"  {name}: http://{host}:{port}/{view}", highlight=False, soft_wrap=True)
    os.execv(sys.executable, args)  # no shell: nothing user-supplied is interpreted


def _runs_views(tracking_uri: str) -> list[tuple[str, str]]:
    """(experiment, its runs view: job runs best first) of every kdbench experiment (track/links.py)."""
    from mlflow import MlflowClient

    from kdbench.track.links import RUNS_VIEW_TAG

    try:
        experiments = MlflowClient(tracking_uri).search_experiments(filter_string="name LIKE 'kdbench/%'")
    except Exception:  # the UI still starts; the links are a convenience
        return []
    return sorted((e.name, e.tags[RUNS_VIEW_TAG]) for e in experiments if RUNS_VIEW_TAG in e.tags)


@app.command()
def sync(suite: Annotated[str, typer.Argument(help="Suite name.")], store: StoreOpt = DEFAULT_STORE,
         tracking_uri: TrackingOpt = None) -> None:
    """Backfill MLflow from the results store (after a tracking-server outage)."""
    from kdbench.results.store import suites
    from kdbench.store import Store
    from kdbench.track import backfill, resolve

    st = _guard(Store, store)
    if suite not in suites(st):  # before any tracking database is created
        known = ", ".join(suites(st)) or "none yet"
        raise fail(f"no suite '{suite}' in store {store} (suites there: {known})")
    uri, artifacts = _guard(resolve, st, tracking_uri)
    created = _guard(backfill, st, suite, uri, artifacts)
    out.print(f"created {created} MLflow run(s) for suite {suite}")
