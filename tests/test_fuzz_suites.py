"""Generated suite mutations (types, ranges, tags, aliases, sizes) for a bounded time: each ends in exit status
0 or 2 with one `error:` line — no traceback, no hang, nothing written, bounded memory (tests/fuzz_suites.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECONDS, SEED = 20, 20261202


def test_generated_suite_mutations_are_refused_cleanly():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "platform"), str(ROOT),
                                                       os.environ.get("PYTHONPATH", "")]))
    env.pop("KDBENCH_MAX_JOBS", None)
    proc = subprocess.run([sys.executable, "-m", "tests.fuzz_suites", str(SECONDS), str(SEED)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=SECONDS + 180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    assert stats["failures"] == [], json.dumps(stats["failures"], indent=1)[:6000]
    assert stats["cases"] >= 20 and stats["refused"] > stats["accepted"]
    assert stats["slowest_s"] < 15  # no case hangs
    assert stats["growth_mib"] < 512, stats  # peak memory beyond the warm process: no case builds gigabytes
