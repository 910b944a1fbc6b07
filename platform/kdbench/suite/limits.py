"""Every limit a suite (and the command line) is checked against, with its value and why.

A suite is a page of YAML written by a person; these bounds are far above any real suite (the largest
benchmark suite plans 1,091 jobs and has a few hundred YAML values) and far below what would hang a
check, exhaust memory or overflow a seed. Each is enforced before anything runs or is written, as one
`file:line: field: message` error. docs/limits.md lists them for users; keep the two in step.
"""

from __future__ import annotations

import os

# -- the YAML document -------------------------------------------------------------------------------------

# A suite file (the largest benchmark suite is 4 KB); PyYAML reads ~1 MB/s, so this also bounds parsing time.
MAX_BYTES = 1024 * 1024
# Values the document holds, aliases counted at every use (the largest benchmark suite has 151): a few hundred
# bytes of nested aliases (a "billion laughs") would otherwise build gigabytes. Counted while composing too.
MAX_NODES = 20_000
MAX_DEPTH = 64  # nesting of mappings and lists (a suite needs about 6)
MAX_KEY_CHARS = 256  # a mapping key

# -- names and text ----------------------------------------------------------------------------------------

MAX_NAME_CHARS = 64  # suite, model, ensemble names: they become file and directory names
MAX_TEXT_CHARS = 4096  # any other text value (paths, plugin modules, descriptions' lines)
MAX_DESCRIPTION_CHARS = 100_000

# -- numbers -----------------------------------------------------------------------------------------------

# Seeds feed NumPy and PyTorch generators (and the data split), which take unsigned 32-bit seeds.
MAX_SEED = 2**32 - 1
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 1 << 20
MAX_LR = 1_000.0
MAX_WEIGHT_DECAY = 1.0
MAX_RETRIES = 100
MAX_TRIALS = 100_000  # search trials per cell
MAX_CPUS = 4096.0  # per job
MAX_JOBS_PER_TRIAL = 256  # an explicit `resources.jobs_per_trial` (and the most `auto` packs)
MAX_GPUS = 64.0  # per job
MAX_CACHE_GIB = 1_000_000.0
# Any integer a component's parameters hold (widths, dataset sizes, top-k…): a bound against
# overflow and absurd allocations; the model-size check below is the finer one.
MAX_INT = 2**31 - 1
# Parameters of one model (summed over a teacher's or student's tensors), counted without allocating
# them: validate builds every model for its compute estimate, so an absurd width must be refused first.
MAX_MODEL_PARAMS = 2_000_000_000  # 8 GB of fp32 weights; the largest zoo model (ResNet-152) has 60 M
# One sample's input (ImageNet: 150,528 values) and a dataset's training samples (ImageNet: 1.28 M):
# validate builds a zero sample and one label per training sample for its checks.
MAX_INPUT_VALUES = 100_000_000
MAX_SAMPLES = 20_000_000  # ImageNet-21k: 14 M

# A suite's `reference:` CSV of published numbers, copied into the store by `kdbench run`.
MAX_REFERENCE_BYTES = 10 * 1024 * 1024

# -- the plan ----------------------------------------------------------------------------------------------

PLAN_LIMIT_ENV = "KDBENCH_MAX_JOBS"
DEFAULT_MAX_JOBS = 20_000  # ~7 KB of memory per planned job; 20x the largest benchmark suite


class LimitError(ValueError):
    """A limit configured wrongly (an environment variable that is not a count)."""


def max_jobs() -> int:
    """The plan-size limit: KDBENCH_MAX_JOBS, else DEFAULT_MAX_JOBS."""
    raw = os.environ.get(PLAN_LIMIT_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_JOBS
    if not raw.isdigit() or not 0 < int(raw) <= 10**9:
        raise LimitError(f"{PLAN_LIMIT_ENV}={raw[:40]!r} must be a whole number of jobs in 1..1000000000")
    return int(raw)
