# syntax=docker/dockerfile:1
# The kdbench GPU worker image: Ray (CUDA), PyTorch, DeepSpeed and kdbench. Every Ray node runs it: the
# cluster launcher (cluster/aws-gpu.yaml), KubeRay (cluster/kuberay/*.yaml) and the compose stack.
# Build from the repository root:
#   docker build -f docker/worker.Dockerfile -t ghcr.io/your-org/kdbench-worker:0.1.0 .
# `rayproject/ray-ml` images are no longer published; the CUDA variants of `rayproject/ray` are the base
# (`-gpu` aliases the release's default CUDA tag; pin a `-cuXXX` tag to choose the CUDA version).
ARG RAY_IMAGE=rayproject/ray:2.60.0-py311-gpu
FROM ${RAY_IMAGE}

ARG TORCH_VERSION=2.14.1
# torchvision and timm: `timm/<name>` and `torchvision/<name>` architectures (kdbench[vision]).
ARG TORCHVISION_VERSION=0.29.1
ARG DEEPSPEED_VERSION=0.19.8
# The MLflow client the driver logs with: the server's version (docker/mlflow.Dockerfile).
ARG MLFLOW_VERSION=3.17.2

# PyPI's Linux torch wheel brings its own CUDA libraries; only the NVIDIA driver comes from the host (it
# must be new enough for the wheel's CUDA version).
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"
# DeepSpeed installs as a pure-Python wheel; its ops compile on first use (DS_BUILD_OPS=0).
RUN DS_BUILD_OPS=0 pip install --no-cache-dir "deepspeed==${DEEPSPEED_VERSION}"

# kdbench from this repository, with its benchmark suites (RayJob entrypoints name them by path).
WORKDIR /home/ray/kdbench
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users platform ./platform
COPY --chown=ray:users benchmarks ./benchmarks
RUN pip install --no-cache-dir ".[vision]" "mlflow==${MLFLOW_VERSION}" \
 && python -c "import kdbench, torch, torchvision, timm, deepspeed; print('kdbench', kdbench.__version__, 'torch', torch.__version__)"

# No ENTRYPOINT: the cluster launcher, KubeRay and compose each run their own `ray start ...` in it.
# Run alone, the image prints the kdbench CLI's help.
CMD ["kdbench", "--help"]
