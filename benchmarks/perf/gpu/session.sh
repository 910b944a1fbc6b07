#!/usr/bin/env bash
# Runs on the GPU machine (see README.md beside this file). Output also goes to $OUT/gpu_session.log.
set -uo pipefail
cd "$(dirname "$0")/../../.."
LOG="${OUT:-/tmp}/gpu_session.log"
exec > >(tee -a "$LOG") 2>&1
python -m pip install -q --no-index --no-deps .gpu-wheels/*.whl 2>&1 | tail -3
export PYTHONPATH="$PWD/platform:$PWD/benchmarks/perf"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name(0))"
timeout 200 python benchmarks/perf/gpu/checks.py || echo "checks.py exited $?"
timeout 150 python benchmarks/perf/p6_gpu_data_path.py --device cuda --n 50000 --epochs 2 || echo "p6 exited $?"
timeout 150 python benchmarks/perf/p4_fused.py --device cuda --arch resnet8 --n 8 --epochs 2 --rounds 2 \
  || echo "p4 exited $?"
