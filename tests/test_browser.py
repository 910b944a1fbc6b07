"""MLflow as a person sees it: headless Chromium opens the suite's experiment through `kdbench ui` and the parent
run's leaderboard page, and the rendered DOM is what kdbench promises (training runs, not the GenAI pages; job
runs named so the list reads, best first; the leaderboard in percent). Needs Chromium (.ci/run installs
Debian's package)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from html import unescape
from pathlib import Path

import pytest

from kdbench.orchestrate import RunOptions, run_suite
from kdbench.store import Store

from .conftest import write_suite

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=20000", "--window-size=1500,1000"]

SUITE = """\
name: browse
dataset: {name: synthetic, n_train: 128, n_val: 64, n_test: 64, dim: 8, num_classes: 3}
recipe: {epochs: 2, batch_size: 64}
teachers: [{name: big, arch: mlp, widths: [32]}]
students: [{name: small, arch: mlp, widths: [4]}]
methods: [none, kd]
seeds: [0, 1]
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chromium(tmp_path: Path, url: str, *extra: str) -> str:
    profile = tmp_path / f"chrome-{time.monotonic_ns()}"
    proc = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, url], capture_output=True,
                          text=True, timeout=120)
    return proc.stdout


def _text(dom: str) -> str:
    dom = re.sub(r"<(style|script)\b.*?</\1>", " ", dom, flags=re.S)
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom)))


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Chromium is not installed here")
def test_the_experiment_opens_on_its_job_runs_best_first_and_the_leaderboard_reads_in_percent(tmp_path, ray_local):
    from mlflow import MlflowClient

    assert CHROMIUM is not None, "CI installs Chromium (.ci/run)"
    store = Store(tmp_path / "store")
    counts = run_suite(str(write_suite(tmp_path, SUITE)), RunOptions(store=store.uri))
    assert counts.run == 5 and counts.tracking_complete
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "platform"), str(ROOT)])}
    ui = subprocess.Popen([sys.executable, "-m", "kdbench.cli", "ui", "--store", store.uri, "--port", str(port)],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                          start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if urllib.request.urlopen(f"{base}/health", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("kdbench ui did not answer")
        printed = ui.stdout.readline() + ui.stdout.readline()
        client = MlflowClient(base)
        experiment = client.get_experiment_by_name("kdbench/browse")
        view = experiment.tags["kdbench.runs_view"]
        assert f"kdbench/browse: {base}/{view}" in printed  # `kdbench ui` prints the link

        runs = _text(_chromium(tmp_path, f"{base}/{view}", "--dump-dom"))
        assert "Runs - Experiment" in runs and "Sort: test_acc" in runs
        assert "Traces 0" not in runs and "Token Usage" not in runs  # not MLflow's GenAI overview
        names = re.findall(r"(?:kd|baseline|teacher) · [^·]+ · s\d", runs)
        assert {"kd · big → small · s0", "kd · big → small · s1", "baseline · small · s0"} <= set(names)
        assert not any(n.startswith("browse v1") for n in names)  # the job runs, not the parent
        shot = tmp_path / "runs.png"
        _chromium(tmp_path, f"{base}/{view}", f"--screenshot={shot}")
        assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000

        (parent,) = client.search_runs([experiment.experiment_id], "tags.`kdbench.role` = 'parent'")
        # The page as MLflow serves it from the parent run's artifacts, rendered by the browser.
        served = urllib.request.urlopen(f"{base}/get-artifact?path=leaderboard/leaderboard.html"
                                        f"&run_uuid={parent.info.run_id}", timeout=30).read()
        (tmp_path / "leaderboard.html").write_bytes(served)
        page = _text(_chromium(tmp_path, (tmp_path / "leaderboard.html").as_uri(), "--dump-dom"))
        assert "kdbench leaderboard: browse" in page and "rank: the method's place" in page
        accuracies = re.findall(r"\b\d{1,3}\.\d\d ± \d+\.\d\d\b|\b\d{1,3}\.\d\d \[\d", page)
        assert accuracies and not re.search(r"\b0\.\d{4}\b", page)  # percent, never raw fractions
        table = [a.path for a in client.list_artifacts(parent.info.run_id, "leaderboard")]
        assert "leaderboard/methods_table.json" in table  # logged with log_table: MLflow shows it as a table
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)
