#!/usr/bin/env bash
# Download the wheels the GPU machine lacks (Python 3.12, manylinux x86_64) into .gpu-wheels/.
set -euo pipefail
cd "$(dirname "$0")/../../.."
rm -rf .gpu-wheels && mkdir .gpu-wheels
PY=(--python-version 3.12 --implementation cp --abi cp312 --platform manylinux2014_x86_64 --only-binary=:all:)
.venv/bin/pip download -q -d .gpu-wheels --no-deps "${PY[@]}" \
  pydantic pydantic-core annotated-types typing-inspection typing-extensions \
  hjson msgpack ninja py-cpuinfo einops
# DeepSpeed ships as a source distribution: build its pure-Python wheel here (its ops compile at run time).
.venv/bin/pip wheel -q --no-deps --no-build-isolation -w .gpu-wheels "deepspeed==$(.venv/bin/python -c \
  'import importlib.metadata as m; print(m.version("deepspeed"))')" || echo "deepspeed wheel not built"
du -sh .gpu-wheels && ls .gpu-wheels
