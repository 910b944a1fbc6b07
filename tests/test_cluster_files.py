"""The cluster definitions (cluster/) and images (docker/), checked against the real tools available here.

No Docker engine, cloud or Kubernetes runs here, so what can be checked is checked with the tools
themselves: the launcher config against Ray's own cluster-config schema, every `ray start`,
`mlflow server` and `kdbench` command (in the files, the READMEs and docs/) with the real CLIs' parsers,
the compose file with `docker-compose config` when that binary is installed, the images' versions
against the ones installed and tested here, and `cluster/local_cluster.sh` by running it.
"""

from __future__ import annotations

import configparser
import copy
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER, DOCKER = ROOT / "cluster", ROOT / "docker"
LAUNCHER = CLUSTER / "aws-gpu.yaml"
RAYCLUSTER, RAYJOB = CLUSTER / "kuberay" / "raycluster.yaml", CLUSTER / "kuberay" / "rayjob.yaml"
COMPOSE, COMPOSE_GPU, ENV_EXAMPLE = DOCKER / "compose.yaml", DOCKER / "compose.gpu.yaml", DOCKER / ".env.example"
SCRIPT = CLUSTER / "local_cluster.sh"

# Field names of the KubeRay ray.io/v1 API (v1.6) used to catch misspelt keys, which kubectl would
# reject only on a real cluster.
RAYCLUSTER_SPEC = {"suspend", "managedBy", "autoscalerOptions", "headServiceAnnotations", "enableInTreeAutoscaling",
                   "gcsFaultToleranceOptions", "headGroupSpec", "rayVersion", "workerGroupSpecs", "authOptions",
                   "upgradeStrategy", "schedulerName"}
RAYJOB_SPEC = {"activeDeadlineSeconds", "backoffLimit", "rayClusterSpec", "submitterPodTemplate", "metadata",
               "clusterSelector", "submitterConfig", "managedBy", "deletionStrategy", "entrypoint", "runtimeEnvYAML",
               "jobId", "submissionMode", "entrypointResources", "entrypointNumCpus", "entrypointNumGpus",
               "ttlSecondsAfterFinished", "shutdownAfterJobFinishes", "suspend", "schedule"}
HEAD_GROUP = {"serviceType", "headService", "enableIngress", "rayStartParams", "template", "suspend"}
WORKER_GROUP = {"groupName", "replicas", "minReplicas", "maxReplicas", "idleTimeoutSeconds", "rayStartParams",
                "template", "scaleStrategy", "numOfHosts", "suspend"}


# ---------------------------------------------------------------------------------------------- helpers

def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def shell_commands(markdown: str) -> list[list[str]]:
    """Every simple command in the markdown's ```bash blocks, as argv lists (continuations joined)."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", markdown, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
                lexer.whitespace_split, lexer.commenters = True, "#"
                current = []
                for token in lexer:
                    if token in {";", "&&", "&", "||", "|"}:
                        out.append(current)
                        current = []
                    else:
                        current.append(token)
                out.append(current)
    return [c for c in out if c]


def docker_builds(markdown: str) -> dict[str, str]:
    """{Dockerfile path: tag} of every `docker build -f FILE -t TAG .` in the markdown's bash blocks."""
    builds = {}
    for argv in shell_commands(markdown):
        if argv[:2] == ["docker", "build"]:
            builds[argv[argv.index("-f") + 1]] = argv[argv.index("-t") + 1]
    return builds


@cache
def cluster_doc() -> str:
    """The cluster walk-through users follow (docs/cluster.md)."""
    return (ROOT / "docs" / "cluster.md").read_text()


@cache
def worker_image() -> str:
    """The image name docs/cluster.md tells users to build and push."""
    return docker_builds(cluster_doc())["docker/worker.Dockerfile"]


def ray_start(command: str) -> tuple[dict, str]:
    """Parse the `ray start …` in a shell command line with Ray's own CLI; returns (params, the line)."""
    from ray.scripts.scripts import start

    for part in re.split(r";|&&", command):
        argv = shlex.split(part)
        if argv[:2] == ["ray", "start"]:
            return start.make_context("start", argv[2:]).params, command
    raise AssertionError(f"no `ray start` in {command!r}")


def mlflow_server(args: list[str]) -> dict:
    """Parse `mlflow server` arguments with MLflow's own CLI (unknown options and bad choices raise)."""
    from mlflow.cli import server

    return server.make_context("server", list(args)).params


def kdbench_command(argv: list[str]):
    """Parse a `kdbench …` command line with the real CLI, without running it."""
    import typer.main

    from kdbench.cli import app

    group = typer.main.get_command(app)
    assert argv[0] == "kdbench" and argv[1] in group.commands, f"`kdbench {argv[1]}` is not a kdbench command"
    return group.commands[argv[1]].make_context(argv[1], argv[2:]).params


def interpolate(value, env: dict[str, str]):
    """Compose's variable substitution (${V}, ${V:-default}, ${V:?error}, $$) over a loaded compose file."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if op == ":?" and not env.get(name):
            raise KeyError(f"{name}: {arg}")
        return env.get(name) or (arg if op == ":-" else "")

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", sub, value).replace("$$", "$")


def env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line.strip() and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    text = "\n".join(lines).replace("\\\n", " ")
    parts = [line.split(None, 1) for line in text.splitlines() if line.strip()]
    return [(op.upper(), args.strip()) for op, args in parts]


def arg_defaults(instructions) -> dict[str, str]:
    return dict(args.split("=", 1) for op, args in instructions if op == "ARG" and "=" in args)


def secret_refs(node) -> set[tuple[str, str]]:
    """(secret name, key) of every secretKeyRef and authOptions.secretName in a manifest."""
    found = set()
    if isinstance(node, dict):
        if "secretKeyRef" in node:
            found.add((node["secretKeyRef"]["name"], node["secretKeyRef"]["key"]))
        if "secretName" in node and node.get("mode") == "token":
            found.add((node["secretName"], "auth_token"))
        for v in node.values():
            found |= secret_refs(v)
    elif isinstance(node, list):
        for v in node:
            found |= secret_refs(v)
    return found


# ---------------------------------------------------------------------------------------------- tests

def test_every_yaml_under_cluster_and_docker_parses():
    files = sorted([*CLUSTER.rglob("*.yaml"), *CLUSTER.rglob("*.yml"), *DOCKER.rglob("*.yaml"), *DOCKER.rglob("*.yml")])
    assert {LAUNCHER, RAYCLUSTER, RAYJOB, COMPOSE, COMPOSE_GPU} <= set(files)
    for path in files:
        docs = list(yaml.safe_load_all(path.read_text()))
        assert docs and all(isinstance(d, dict) for d in docs), path


def test_the_launcher_config_passes_rays_schema_and_keeps_the_dashboard_on_loopback_with_token_auth():
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = load(LAUNCHER)
    config = prepare_config(copy.deepcopy(raw))  # the launcher's own defaults, as `ray up` fills them in
    validate_config(config)                      # Ray 2.60's ray-schema.json: misspelt keys are errors

    assert raw["cluster_name"] and raw["provider"]["type"] == "aws"
    assert raw["head_node_type"] in raw["available_node_types"]
    workers = {name: t for name, t in raw["available_node_types"].items() if name != raw["head_node_type"]}
    gpu = [t for t in workers.values() if re.match(r"(g|p)\d", t["node_config"]["InstanceType"])]
    assert gpu, "no GPU worker type"
    assert all(1 <= t["min_workers"] <= t["max_workers"] <= raw["max_workers"] for t in gpu)
    assert raw["docker"]["image"] == worker_image()
    assert "--env RAY_AUTH_MODE=token" in raw["docker"]["run_options"]
    assert "~/.ray/auth_token" in raw["file_mounts"]  # the token reaches every node

    head, line = ray_start(raw["head_start_ray_commands"][-1])
    assert head["head"] and head["dashboard_host"] == "127.0.0.1"
    assert re.search(r"export RAY_AUTH_MODE=token;.*ray start", line)
    worker, line = ray_start(raw["worker_start_ray_commands"][-1])
    assert worker["address"].startswith("$RAY_HEAD_IP:") and re.search(r"export RAY_AUTH_MODE=token;.*ray start", line)


@pytest.mark.parametrize("path", [RAYCLUSTER, RAYJOB], ids=["RayCluster", "RayJob"])
def test_kuberay_manifests_use_v1_fields_gpu_workers_the_image_and_token_auth(path):
    import ray

    manifest = load(path)
    assert manifest["apiVersion"] == "ray.io/v1"
    assert manifest["kind"] == {RAYCLUSTER: "RayCluster", RAYJOB: "RayJob"}[path]
    if manifest["kind"] == "RayJob":
        assert set(manifest["spec"]) <= RAYJOB_SPEC, set(manifest["spec"]) - RAYJOB_SPEC
        spec = manifest["spec"]["rayClusterSpec"]
    else:
        spec = manifest["spec"]
    assert set(spec) <= RAYCLUSTER_SPEC, set(spec) - RAYCLUSTER_SPEC
    assert spec["rayVersion"] == ray.__version__  # the cluster runs the Ray the client was tested with
    assert spec["authOptions"]["mode"] == "token" and spec["authOptions"]["secretName"]

    head = spec["headGroupSpec"]
    assert set(head) <= HEAD_GROUP and head.get("serviceType", "ClusterIP") == "ClusterIP"
    containers = head["template"]["spec"]["containers"]
    assert containers[0]["image"] == worker_image()
    assert "nvidia.com/gpu" not in containers[0]["resources"]["limits"]

    gpu_groups = []
    for group in spec["workerGroupSpecs"]:
        assert set(group) <= WORKER_GROUP, set(group) - WORKER_GROUP
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        worker = group["template"]["spec"]["containers"][0]
        assert worker["image"] == worker_image()
        if int(worker["resources"]["limits"].get("nvidia.com/gpu", 0)) >= 1:
            gpu_groups.append(group["groupName"])
    assert gpu_groups, "no worker group requests nvidia.com/gpu"

    if manifest["kind"] == "RayCluster":  # reached through kubectl port-forward only
        assert head["rayStartParams"]["dashboard-host"] == "127.0.0.1"


def test_the_rayjob_entrypoint_is_a_kdbench_run_the_cli_accepts_on_a_suite_in_the_image():
    from kdbench.suite import load_suite

    argv = shlex.split(load(RAYJOB)["spec"]["entrypoint"])
    params = kdbench_command(argv)
    assert argv[1] == "run" and params["address"] == "auto"
    assert params["store"].startswith("s3://") and params["tracking_uri"].startswith("http://")
    # The suite is read from the image: WORKDIR holds the repository's files.
    workdir = next(args for op, args in dockerfile(DOCKER / "worker.Dockerfile") if op == "WORKDIR")
    suite = Path(params["suite"])
    assert suite.is_relative_to(workdir), f"{suite} is not under the image's {workdir}"
    assert load_suite(str(ROOT / suite.relative_to(workdir))).name


def test_the_secrets_the_manifests_read_are_the_ones_the_docs_create():
    created = set()
    for argv in shell_commands(cluster_doc()):
        if argv[:4] == ["kubectl", "create", "secret", "generic"]:
            keys = [a.split("=", 1)[1].split("=", 1)[0] for a in argv if a.startswith("--from-literal=")]
            created |= {(argv[4], k) for k in keys}
    for path in (RAYCLUSTER, RAYJOB):
        missing = secret_refs(load(path)) - created
        assert not missing, f"{path.name} reads Secrets docs/cluster.md does not create: {sorted(missing)}"


def test_compose_publishes_on_loopback_only_and_its_commands_parse_with_the_real_clis():
    env = env_file(ENV_EXAMPLE)
    raw = load(COMPOSE)
    compose = interpolate(raw, env)
    services = compose["services"]
    assert {"ray-head", "ray-worker", "mlflow", "postgres", "minio", "createbuckets"} <= set(services)

    for name, service in services.items():
        for port in service.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", f"{name} publishes {port} beyond loopback"
    assert "ports" not in services["postgres"]

    for name in ("ray-head", "ray-worker"):
        service = services[name]
        assert service["image"] == worker_image() and service["build"]["dockerfile"] == "docker/worker.Dockerfile"
        assert service["environment"]["RAY_AUTH_MODE"] == "token"
        params, _ = ray_start(service["command"])
        assert params["block"]
    assert ray_start(services["ray-head"]["command"])[0]["head"]
    assert ray_start(services["ray-worker"]["command"])[0]["address"] == "ray-head:6379"
    # The token and the passwords are required, not defaulted.
    with pytest.raises(KeyError, match="RAY_AUTH_TOKEN"):
        interpolate(raw, {k: v for k, v in env.items() if k != "RAY_AUTH_TOKEN"})

    mlflow = services["mlflow"]
    params = mlflow_server(mlflow["command"])
    assert params["backend_store_uri"].startswith("postgresql://") and "@postgres:" in params["backend_store_uri"]
    assert params["artifacts_destination"].startswith("s3://")
    assert params["app_name"] == "basic-auth" and params["host"] == "0.0.0.0"
    assert "mlflow:5000" in params["allowed_hosts"].split(",")  # the Ray nodes' Host header
    assert mlflow["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert mlflow["image"] == docker_builds(cluster_doc())["docker/mlflow.Dockerfile"]


def compose_cli() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return None


@pytest.mark.skipif(compose_cli() is None, reason="neither docker-compose nor the docker compose plugin is installed "
                                                  "(Debian: apt-get install docker-compose)")
def test_docker_compose_config_accepts_the_stack_and_requires_its_secrets(tmp_path):
    cli = compose_cli()
    clean = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}  # no variables leak in from this shell
    for files in ([COMPOSE], [COMPOSE, COMPOSE_GPU]):
        args = [*cli, "--env-file", str(ENV_EXAMPLE), *sum((["-f", str(f)] for f in files), []), "config"]
        done = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, env=clean, timeout=60)
        assert done.returncode == 0, done.stderr
        config = yaml.safe_load(done.stdout)
        token = config["services"]["ray-head"]["environment"]["RAY_AUTH_TOKEN"]
        assert token == env_file(ENV_EXAMPLE)["RAY_AUTH_TOKEN"]
    empty = tmp_path / "empty.env"
    empty.write_text("")
    done = subprocess.run([*cli, "--env-file", str(empty), "-f", str(COMPOSE), "config"], capture_output=True,
                          text=True, cwd=tmp_path, env=clean, timeout=60)
    assert done.returncode != 0 and "RAY_AUTH_TOKEN" in done.stderr


def test_the_worker_image_is_built_on_the_tested_versions_and_runs_the_documented_command():
    import ray
    import torch
    from typer.testing import CliRunner

    from kdbench.cli import app

    steps = dockerfile(DOCKER / "worker.Dockerfile")
    args = arg_defaults(steps)
    base = next(a for op, a in steps if op == "FROM").replace("${RAY_IMAGE}", args["RAY_IMAGE"])
    py = f"py{sys.version_info.major}{sys.version_info.minor}"
    assert re.fullmatch(rf"rayproject/ray:{re.escape(ray.__version__)}-{py}-(gpu|cu\d+)", base), base
    assert args["TORCH_VERSION"] == torch.__version__.split("+")[0]
    assert args["TORCHVISION_VERSION"] == importlib.metadata.version("torchvision").split("+")[0]
    assert args["DEEPSPEED_VERSION"] == importlib.metadata.version("deepspeed")
    assert args["MLFLOW_VERSION"] == importlib.metadata.version("mlflow")  # client = server = tested
    runs = " ".join(a for op, a in steps if op == "RUN")
    assert 'pip install --no-cache-dir "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"' in runs
    assert "deepspeed==${DEEPSPEED_VERSION}" in runs
    assert 'pip install --no-cache-dir ".[vision]" "mlflow==${MLFLOW_VERSION}"' in runs
    for op, a in steps:
        if op == "COPY":
            for src in [s for s in a.split() if not s.startswith("--")][:-1]:
                assert (ROOT / src).exists(), f"COPY {src}: no such file in the repository"

    assert not [a for op, a in steps if op == "ENTRYPOINT"]  # launcher, KubeRay and compose pass `ray start`
    cmd = json.loads(next(a for op, a in steps if op == "CMD"))
    assert cmd == ["kdbench", "--help"]
    assert CliRunner().invoke(app, cmd[1:]).exit_code == 0
    docs = (DOCKER / "README.md").read_text()
    assert f"docker run --rm {worker_image()}     # its CMD: {' '.join(cmd)}" in docs
    assert docker_builds(docs)["docker/worker.Dockerfile"] == worker_image()


def test_the_mlflow_image_serves_basic_auth_on_the_tested_mlflow():
    import mlflow

    steps = dockerfile(DOCKER / "mlflow.Dockerfile")
    assert arg_defaults(steps)["MLFLOW_VERSION"] == mlflow.__version__
    assert arg_defaults(dockerfile(DOCKER / "worker.Dockerfile"))["MLFLOW_VERSION"] == mlflow.__version__
    runs = " ".join(a for op, a in steps if op == "RUN")
    # compose.yaml's backend is a plain postgresql:// URI: with SQLAlchemy 2.1 that is psycopg 3's dialect
    # (tests/services.py runs the real server that way), not psycopg2's.
    assert all(p in runs for p in ('"mlflow[auth]==${MLFLOW_VERSION}"', '"psycopg[binary]"', "boto3"))
    assert "psycopg2" not in runs
    assert json.loads(next(a for op, a in steps if op == "ENTRYPOINT")) == ["mlflow", "server"]
    params = mlflow_server(json.loads(next(a for op, a in steps if op == "CMD")))
    assert params["host"] == "0.0.0.0" and params["app_name"] == "basic-auth"

    src, dest = next(a for op, a in steps if op == "COPY").split()
    assert next(a for op, a in steps if op == "ENV") == f"MLFLOW_AUTH_CONFIG_PATH={dest}"
    ini = configparser.ConfigParser()
    ini.read(ROOT / src)
    assert ini["mlflow"]["admin_username"] == "admin" and "admin_password" not in ini["mlflow"]
    assert ini["mlflow"]["database_uri"].startswith("sqlite:////mlflow/")  # the image's volume

    # docs/cluster.md's `docker run … kdbench-mlflow:TAG ARGS`: ARGS go to `mlflow server`.
    tag = docker_builds(cluster_doc())["docker/mlflow.Dockerfile"]
    run = next(argv for argv in shell_commands(cluster_doc()) if argv[:2] == ["docker", "run"] and tag in argv)
    params = mlflow_server(run[run.index(tag) + 1:])
    assert params["app_name"] == "basic-auth" and params["backend_store_uri"].startswith("postgresql://")
    assert params["artifacts_destination"].startswith("s3://")
    assert "127.0.0.1:5000:5000" in run  # published on loopback


def test_every_kdbench_command_in_the_docs_parses_with_the_cli():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), DOCKER / "README.md", CLUSTER / "README.md"]
    docs = "".join(page.read_text() for page in pages)
    commands = [argv for argv in shell_commands(docs) if argv[0] == "kdbench"]
    assert {argv[1] for argv in commands} >= {"submit", "status", "logs", "stop"}
    for argv in commands:
        params = kdbench_command(argv)
        suite = params.get("suite")
        if isinstance(suite, Path):  # a suite file (leaderboard and sync take a suite's name)
            assert (ROOT / suite).is_file(), f"{' '.join(argv)}: no suite {suite}"


def test_the_local_cluster_script_is_valid_bash():
    done = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert os.access(SCRIPT, os.X_OK)


def free_port_block(span: int = 160) -> int:
    """A GCS port P such that P..P+span are all free here (the script uses P, P+1 and P+100..)."""
    for base in range(6390, 30000, 997):
        try:
            socks = []
            for p in (base, base + 1, *range(base + 100, base + span)):
                s = socket.socket()
                socks.append(s)
                s.bind(("0.0.0.0", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port block")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes_naming(text: str) -> list[str]:
    out = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if text in line]


@pytest.mark.slow
@pytest.mark.cluster  # cluster/local_cluster.sh starts a head and a worker
def test_the_local_cluster_script_starts_a_head_and_a_worker_and_stops_only_them():
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": venv_bin + os.pathsep + os.environ["PATH"]}
    env.pop("RAY_ADDRESS", None)
    state = tempfile.mkdtemp(prefix="kdblc-", dir="/tmp")  # short: Ray's socket paths must stay < 107 bytes
    port, dashboard = free_port_block(), free_port()
    common = ["--dir", state]
    # Bystanders that merely look like Ray processes of another local cluster: stop must spare them.
    other_dir = tempfile.mkdtemp(prefix="kdblc-other-", dir="/tmp")
    bystanders = [subprocess.Popen(["bash", "-c", "sleep 120; :", arg], env=env) for arg in
                  (f"--temp-dir={other_dir}/ray", f"ray.util.client.server --address=127.0.0.1:{port + 7}")]

    def script(*args, timeout=180):
        return subprocess.run(["bash", str(SCRIPT), *args, *common], capture_output=True, text=True, env=env,
                              timeout=timeout)

    try:
        started = script("start", "--workers", "1", "--cpus", "1", "--port", str(port),
                         "--dashboard-port", str(dashboard))
        assert started.returncode == 0, started.stdout + started.stderr
        token = Path(state, "auth_token")
        assert len(token.read_text()) == 64 and token.stat().st_mode & 0o077 == 0

        status = script("status", timeout=60)
        assert status.returncode == 0, status.stderr
        assert "alive nodes: 2" in status.stdout, status.stdout
        assert "kdbench_local_head" in status.stdout and "kdbench_local_worker_1" in status.stdout
        # The dashboard (Ray Jobs API) answers on loopback, and only with the token.
        import urllib.error
        import urllib.request

        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{dashboard}/api/jobs/", timeout=10)
        assert refused.value.code in (401, 403)
        request = urllib.request.Request(f"http://127.0.0.1:{dashboard}/api/jobs/",
                                         headers={"Authorization": f"Bearer {token.read_text()}"})
        assert urllib.request.urlopen(request, timeout=10).status == 200
        # A client set up the documented way (eval "$(local_cluster.sh env)") is let in by Ray's own client.
        client = (f'eval "$(bash {shlex.quote(str(SCRIPT))} env --dir {state})"; "{sys.executable}" -c '
                  f'"from ray.job_submission import JobSubmissionClient as C; '
                  f"print('jobs:', len(C('http://127.0.0.1:{dashboard}').list_jobs()))\"")
        listed = subprocess.run(["bash", "-c", client], capture_output=True, text=True, env=env, timeout=60)
        assert listed.returncode == 0 and re.search(r"jobs: \d+", listed.stdout), listed.stdout + listed.stderr

        assert processes_naming(f"{state}/ray")
        stopped = script("stop", timeout=60)
        assert stopped.returncode == 0, stopped.stderr
        assert not processes_naming(f"{state}/ray"), "processes of the stopped cluster are still running"
        assert not processes_naming(f"--port={port + 1} "), "its Ray client server is still running"
        assert all(b.poll() is None for b in bystanders), "stop ended a process that was not its own"
        with socket.socket() as s:  # nothing listens on its GCS port any more (TIME_WAIT is no listener)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", port))
    finally:
        script("stop", timeout=60)
        for b in bystanders:
            b.kill()
            b.wait()
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(other_dir, ignore_errors=True)
