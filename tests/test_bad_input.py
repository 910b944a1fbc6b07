"""Bad input through the real command: exit status 2, one line naming what is wrong, nothing run and
nothing written to the store; and nothing user-supplied reaches a shell."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from kdbench.cli import app

from .conftest import TINY_SUITE, write_suite
from .test_spec_errors import CASES

runner = CliRunner()


@pytest.mark.parametrize("text,line,field,fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_kdbench_run_refuses_a_malformed_suite_before_any_work(tmp_path, text, line, field, fragment):
    path = write_suite(tmp_path, text)
    store = tmp_path / "store"
    result = runner.invoke(app, ["run", str(path), "--store", str(store)])
    assert result.exit_code == 2
    lines = [x for x in result.output.splitlines() if x.strip()]
    message = " ".join(result.output.split())
    assert message.startswith(f"error: {path}") and fragment in message and field in message
    assert "Traceback" not in result.output and len(lines) <= 3  # one message (wrapped at most)
    assert not store.exists()  # nothing written: no plan, no MLflow, no Ray state


@pytest.mark.parametrize("address", ["127.0.0.1:9", "localhost:9"])  # a name starting "local" is still checked
def test_an_unreachable_cluster_address_is_a_clear_error(tmp_path, address):
    path = write_suite(tmp_path, TINY_SUITE)
    result = runner.invoke(app, ["run", str(path), "--store", str(tmp_path / "s"), "--address", address])
    assert result.exit_code == 2, result.output
    assert f"cannot reach a Ray cluster at '{address}'" in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not (tmp_path / "s").exists()


def test_a_suite_cluster_cannot_run_is_refused_before_anything_is_written(tmp_path, ray_local):
    path = write_suite(tmp_path, TINY_SUITE + "resources: {cpus: 64}\n")
    result = runner.invoke(app, ["run", str(path), "--store", str(tmp_path / "s")])
    assert result.exit_code == 2 and "no node can run a job needing 64.0 CPUs" in " ".join(result.output.split())
    assert not (tmp_path / "s").exists()


def test_shell_metacharacters_in_user_input_are_never_interpreted(tmp_path):
    marker = tmp_path / "pwned"
    hostile = f"$(touch {marker}); `touch {marker}`"
    for args, status in ((["validate", hostile], 2), (["leaderboard", hostile, "--store", str(tmp_path / "s")], 2),
                         (["query", "select 1 as x", "--store", str(tmp_path / hostile)], 0)):
        result = runner.invoke(app, args)
        assert result.exit_code == status and "Traceback" not in result.output
    assert not marker.exists()


def test_a_missing_suite_file_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "cannot read the file" in result.output


@pytest.mark.parametrize("content,fragment", [(b"name: ok\ndescription: caf\xe9\n", "not UTF-8"),
                                              (b"# " + b"x" * (100 * 2**20), "larger than 1,024 KiB")],
                         ids=["non-UTF-8 bytes", "a 100 MB file"])
def test_kdbench_run_refuses_unreadable_files(tmp_path, content, fragment):
    path = tmp_path / "suite.yaml"
    path.write_bytes(content)
    result = runner.invoke(app, ["run", str(path), "--store", str(tmp_path / "store")])
    assert result.exit_code == 2 and fragment in result.output and "Traceback" not in result.output
    assert not (tmp_path / "store").exists()


def test_the_local_ray_starts_no_dashboard(ray_local):
    """Ray's dashboard (a Jobs API that runs code for whoever reaches it) is off for the local Ray."""
    import ray._private.worker as ray_worker

    from .test_suite_e2e import listening_addresses

    assert not ray_worker.global_worker.node.address_info.get("webui_url")
    assert listening_addresses(8265) == set()  # Ray's default dashboard port
