"""`kdbench submit` hands the job the variables its store needs (and only those), and never shows their values:
the runtime environment it sends to the Ray Jobs API, read from a client that records the request."""

from __future__ import annotations

import logging

import pytest
from typer.testing import CliRunner

from kdbench.cli import app
from kdbench.orchestrate import submit as jobs
from kdbench.suite import load_suite

from .conftest import TINY_SUITE, write_suite

runner = CliRunner()

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY-kdbench"
TOKEN = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN-kdbench"
ENV = {
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": TOKEN,
    "AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "GOOGLE_APPLICATION_CREDENTIALS": "/etc/kdbench/gcs-key.json",
    # Set here, none of the store's business: never sent.
    "GITHUB_TOKEN": "ghp_notforthecluster", "AWS_SECURITY_TOKEN": "legacy-notsent",
    "HOME_API_KEY": "home-api-key-value-kdbench",
}
S3_NAMES = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
            "AWS_ENDPOINT_URL"}


class RecordingClient:
    """Ray's JobSubmissionClient as far as `submit` uses it: remembers what it was sent."""

    def __init__(self) -> None:
        self.sent: list[dict] = []

    def submit_job(self, **kwargs) -> str:
        self.sent.append(kwargs)
        return kwargs["submission_id"]


@pytest.fixture
def env(monkeypatch):
    for name in ("KDBENCH_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize(("store", "names"), [
    ("s3://bucket/kdbench", S3_NAMES),
    ("gs://bucket/kdbench", {"GOOGLE_APPLICATION_CREDENTIALS"}),
    ("/shared/kdbench-store", set()),  # a path every node mounts: no credentials travel
])
def test_the_job_gets_exactly_the_variables_its_store_needs(env, tmp_path, store, names):
    suite = load_suite(str(write_suite(tmp_path, TINY_SUITE)))
    client = RecordingClient()
    sub = jobs.submit(client, suite, store, tracking_uri=None, track=False)
    (sent,) = client.sent
    runtime_env = sent["runtime_env"]
    if names:
        assert runtime_env["env_vars"] == {name: ENV[name] for name in names}
    else:
        assert "env_vars" not in runtime_env
    # What kdbench keeps to show (and prints) names the variables, never their values.
    assert sub.runtime_env.get("env_vars", []) == sorted(names)
    shown = repr(sub) + sent["entrypoint"] + repr(sent["metadata"])
    assert all(value not in shown for value in ENV.values())


def test_submit_through_the_cli_prints_and_logs_no_credential(env, tmp_path, monkeypatch, caplog):
    client = RecordingClient()
    monkeypatch.setattr(jobs, "connect", lambda address, timeout=10.0: client)
    suite = write_suite(tmp_path, TINY_SUITE)
    caplog.set_level(logging.DEBUG)
    result = runner.invoke(app, ["submit", str(suite), "--store", "s3://bucket/kdbench", "--no-track", "--no-wait",
                                 "--address", "http://127.0.0.1:8265"])
    assert result.exit_code == 0, result.output
    (sent,) = client.sent
    assert result.output.split()[0] == sent["submission_id"]  # it did submit, and said so
    assert sent["runtime_env"]["env_vars"]["AWS_SECRET_ACCESS_KEY"] == SECRET
    for value in (SECRET, TOKEN, ENV["AWS_ACCESS_KEY_ID"]):
        assert value not in result.output and value not in caplog.text
