"""Generated suite mutations through `kdbench validate`, for a bounded time (tests/test_fuzz_suites.py runs it in
a child process, so that its memory is measured alone).

    python -m tests.fuzz_suites SECONDS SEED  ->  one JSON line: cases, refused, accepted, peak RSS, failures

Each case is the tiny suite with one to three mutations: a value replaced by a hostile one (wrong type,
out of range, non-finite, huge, tagged, aliased), a hostile line added (alias bombs and cycles, deep
nesting, tagged or non-text keys, merge keys, duplicates), a line deleted, duplicated or swapped, a
character corrupted, or a list grown. Every case must end with exit status 0 (a valid suite) or 2 and
exactly one `error: <file>:…` line; never a traceback, another status, a hang or a memory blow-up."""

from __future__ import annotations

import json
import random
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

BASE = """\
name: tiny
dataset: {name: synthetic, n_train: 256, n_val: 128, n_test: 256, dim: 8, num_classes: 4}
recipe:
  epochs: 3
  batch_size: 64
  optimizer: {name: sgd, lr: 0.1, weight_decay: 0.0005}
  schedule: {name: step, milestones: [1, 2], gamma: 0.5}
teachers:
  - {name: big, arch: mlp, widths: [64], seed: 3}
  - {name: mid, arch: mlp, widths: [16], stop_epochs: [1, 2]}
students:
  - {name: small, arch: mlp, widths: [4]}
methods: [none, kd, {kd: {temperature: 2, alpha: 0.5}}]
chains:
  - [big, mid, small]
ensembles:
  - {name: both, members: [big, mid], combine: geometric}
pairs: [[big, small], [both, small]]
seeds: [0, 1]
resources: {cpus: 1, gpus: 0, jobs_per_trial: 1}
retries: 1
teacher_cache: {enabled: auto, views: all, dtype: fp32, max_gib: 1}
"""

VALUES = ["true", "false", "null", "~", "'3'", "1e12", "-1", "0", "1", "2.5", "0.5", ".inf", "-.inf", ".nan", "1e400",
          "-1e400", "9" * 40, "-" + "9" * 25, "4294967296", "18446744073709551616", "x" * 300, "[]", "{}", "[[[[1]]]]",
          "!!binary aGk=", "!!python/object:os.system {}", "!!python/name:os.system", "2001-13-45", "2001-01-01",
          "0x1F", "0o17", "1_000", "*undefined", "&a [*a]", "{<<: 3}", "{<<: [1]}", "!!set {a}", "!!float abc",
          "!!int 1.5", "'\\x00'", "1e-300", "-0.0", "100000000000", "[100000000000]", "[2000000000, 2000000000]",
          "{a: 1}", "'a\\nb'", "|\n    block", "kd", "none", "[kd, kd]", "[big, big]", "' '", "\"\\u202e\"", "1:2"]

LINES = [
    "x-a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\nx-b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "x-c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nx-d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    "x-e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nx-f: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]",
    "x: &x [1, *x]", "x: &x {a: *x}", "x: " + "[" * 3000 + "]" * 3000, "x: " + "{a: " * 200 + "1" + "}" * 200,
    "? [a, b]\n: 1", "!!str k: 1", "!!python/name:os.system k: 1", "3: x", "null: x", "<<: {name: z}",
    "<<: *nope", "name: again", "seeds: [5]", "plugins: [tests.exiting_plugin]", "plugins: ['../../etc']",
    "plugins: [os]", "reference: /dev/zero", "search: {method: kd, space: {temperature: {uniform: [0, .inf]}}}",
    "search: {method: kd, space: {alpha: {uniform: [0.5, 2]}}, trials: 1e9}", "version: 1e300",
    "description: " + "d" * 200_000, "%YAML 1.1\n---", "--- \n---", "...", "\t", "\x07", "'unterminated",
]


_SCALAR = re.compile(r"(?<=: )[^\s,\[\]{}][^,\[\]{}\n]*|(?<=[\[,] )[^\s,\[\]{}]+|(?<=\[)[^\s,\[\]{}]+")


NUMBERS = ["0", "1", "-1", "2", "3", "0.5", "1.5", "-0.5", "100", "1e6", "1e12", "4294967296", "0.999", "1e-12", "true",
           "null", "[]", "[1, 2]", "[0]", "[-1]", "'x'", ".inf", "{}", "[4, 0]", "[100000, 100000]"]


def component(rng: random.Random) -> str:
    """A registered method's, architecture's or dataset's parameter set to a hostile value."""
    from kdbench.methods import METHODS
    from kdbench.zoo.datasets import DATASETS
    from kdbench.zoo.models import ARCHS

    kind = rng.randrange(3)
    registry = (METHODS, ARCHS, DATASETS)[kind]
    name = rng.choice(sorted(registry.names()))
    entry = registry.get(name)
    params = (entry.Params if kind == 0 else entry.params).model_fields
    chosen = rng.sample(sorted(params), min(len(params), rng.randint(1, 2))) if params else []
    values = ", ".join(f"{k}: {rng.choice(NUMBERS)}" for k in chosen)
    if kind == 0:
        return f"methods: [none, {{{name}: {{{values}}}}}]"
    if kind == 1:
        return f"students:\n  - {{name: small, arch: {name}{', ' if values else ''}{values}}}"
    return f"dataset: {{name: {name}{', ' if values else ''}{values}}}"


def mutate(text: str, rng: random.Random) -> str:
    lines = text.splitlines()
    op = rng.randrange(8)
    if op == 7:  # a component's parameters (and the key it replaces)
        line = component(rng)
        key = line.split(":", 1)[0]
        start = next((i for i, x in enumerate(lines) if x.startswith(key + ":")), len(lines))
        end = start + 1
        while end < len(lines) and lines[end].startswith(" "):
            end += 1
        return "\n".join(lines[:start] + [line] + lines[end:]) + "\n"
    if op == 0:  # a value replaced
        spots = list(_SCALAR.finditer(text))
        if spots:
            m = rng.choice(spots)
            return text[: m.start()] + rng.choice(VALUES) + text[m.end():]
    if op == 1:  # a hostile line added
        lines.insert(rng.randrange(len(lines) + 1) if rng.random() < 0.3 else len(lines), rng.choice(LINES))
    elif op == 2 and lines:
        del lines[rng.randrange(len(lines))]
    elif op == 3 and lines:
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
    elif op == 4 and len(lines) > 1:
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif op == 5 and text:
        i = rng.randrange(len(text))
        return text[:i] + rng.choice(" :-[]{},&*!|>'\"#%@`\t\x07\x00é\u2028") + text[i + 1:]
    elif op == 6:  # a list grown
        n = rng.choice([3, 1000, 30_000, 150_000])
        key = rng.choice(["seeds", "methods", "pairs"])
        item = {"seeds": "{i}", "methods": "{{kd: {{temperature: {i}}}}}", "pairs": "[big, small]"}[key]
        lines.append(f"{key}: [" + ", ".join(item.format(i=i + 1) for i in range(n)) + "]")
        lines = [x for x in lines if not x.startswith(f"{key}:")] + lines[-1:]
    return "\n".join(lines) + "\n"


def main(seconds: float, seed: int) -> dict:
    from typer.testing import CliRunner

    import kdbench.orchestrate.ray_session as ray_session
    from kdbench.cli import app

    def no_ray(*a, **k):
        raise AssertionError("Ray started")

    ray_session.init_ray = no_ray
    runner, rng = CliRunner(), random.Random(seed)
    stats = {"cases": 0, "refused": 0, "accepted": 0, "slowest_s": 0.0, "failures": []}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "suite.yaml"
        path.write_text(BASE)
        assert runner.invoke(app, ["validate", str(path)]).exit_code == 0  # warm: imports, model sizes
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            text = BASE
            for _ in range(rng.randint(1, 3)):
                text = mutate(text, rng)
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
            start = time.monotonic()
            result = runner.invoke(app, ["validate", str(path)])
            took = time.monotonic() - start
            stats["cases"] += 1
            stats["slowest_s"] = max(stats["slowest_s"], round(took, 2))
            lines = [x for x in result.output.splitlines() if x.strip()]
            ok = result.exit_code == 0 or (result.exit_code == 2 and len(lines) == 1
                                          and lines[0].startswith(f"error: {path}"))
            ok = ok and "Traceback" not in result.output and took < 15
            ok = ok and sorted(p.name for p in Path(tmp).iterdir()) == ["suite.yaml"]  # nothing written
            stats["refused" if result.exit_code == 2 else "accepted"] += 1
            if not ok and len(stats["failures"]) < 5:
                exc = None if isinstance(result.exception, SystemExit) else repr(result.exception)[:500]
                stats["failures"].append({"suite": text[:3000], "status": result.exit_code, "seconds": round(took, 2),
                                          "output": result.output[-1500:], "exception": exc})
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stats["growth_mib"] = round((peak - baseline) / 1024, 1)  # ru_maxrss is in KiB on Linux
    return stats


if __name__ == "__main__":
    print(json.dumps(main(float(sys.argv[1]), int(sys.argv[2]))))
