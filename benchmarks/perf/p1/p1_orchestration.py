"""P1 — orchestration overhead: 16 equal ≈5 s jobs through `kdbench run` vs a bare 2-process loop.

Claim checked: a suite run through kdbench (local Ray of 2 CPUs, `cpus: 1` per job, one Tune trial
per job, reuse_actors) costs at most 10 % more wall time than the same 16 trainings done by
`kdbench.engine.run_job` in a plain `multiprocessing` pool of 2 processes (8 jobs each, one torch
thread each). Every side gets a fresh temporary store, so both do the same work, and each side runs
in a fresh Python process (so Ray starts as it would for `kdbench run`). Imports before the timed
region are excluded on both sides; worker start-up (spawned processes importing torch) is included
on both sides.

    .venv/bin/python benchmarks/perf/p1/p1_orchestration.py --repeats 2 --write-results

Where the time goes is measured, not guessed: the kdbench side wraps `init_ray`, the tracker set-up,
`tune.Tuner(...)`, `Tuner.fit`, the leaderboard report and `Tracker.close`; each job's interval on a
worker is read from its `final.json` (mtime = end, `wall_seconds` = duration of `run_job`), and
the jobs are packed greedily onto the 2 worker slots to find the idle gaps between them.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIDES = ("kdbench-track", "kdbench-notrack", "kdbench-pack1", "kdbench-pack8", "kdbench-warm", "bare")
# kdbench-track, -notrack and -warm run the suite with kdbench's defaults: since `jobs_per_trial: auto` became the
# default (kdbench/orchestrate/groups.py) that packs these short jobs. kdbench-pack1: tracked, with
# `resources.jobs_per_trial: 1` — one trial per job, the default before (the records up to 2026-11-28).
# kdbench-warm: tracked, `kdbench run --address` to a local Ray head started before each of its rounds (not timed), as
# a laptop user keeping `ray start --head` running or any cluster: each run still starts its own trial workers.
WARM_ADDRESS = "P1_RAY_ADDRESS"
# kdbench-pack8: tracked, with `resources.jobs_per_trial: 8` — the 16 jobs run as 2 trials of 8 jobs fused into
# one vmapped model each (kdbench/orchestrate/groups.py); its slot accounting sees 8 overlapping jobs per slot.
SLOTS = 2  # jobs that run at once: 2 CPUs / `cpus: 1` on the kdbench side, 2 processes on the bare side

SUITE = """\
name: p1-orchestration
version: 1
description: P1 orchestration overhead, {jobs} equal baseline jobs (method none), one per seed.
dataset: {{name: synthetic, n_train: {n_train}, n_val: 500, n_test: 1000}}
recipe:
  epochs: {epochs}
  batch_size: 64
  optimizer: {{name: sgd, lr: 0.05, momentum: 0.9}}
  schedule: {{name: cosine}}
teachers: []
students:
  - {{name: mlp-64, arch: mlp, widths: [64]}}
methods: [none]
seeds: [{seeds}]
resources: {{cpus: 1}}
"""


# -- the job intervals, read back from the store -------------------------------------------------


def job_intervals(store_dir: str, job_ids: list[str]) -> list[tuple[float, float]]:
    """(start, end) wall-clock times of each job's `run_job` call, from its final.json."""
    from kdbench.paths import FINAL
    from kdbench.store import Store

    store, out = Store(store_dir), []
    for job_id in job_ids:
        path = store.path(Store.artifact(job_id, FINAL))
        end = os.stat(path).st_mtime
        out.append((end - json.loads(Path(path).read_text())["wall_seconds"], end))
    return sorted(out)


def slot_accounting(intervals: list[tuple[float, float]], t_start: float, t_end: float,
                    work_start: float, work_end: float) -> dict[str, float]:
    """Split SLOTS × wall into slot-seconds: before the workers' phase, worker start-up (phase start to a
    slot's first job), gaps between jobs, the tail (a slot's last job to phase end), after, and the jobs."""
    slots: list[list[tuple[float, float]]] = [[] for _ in range(SLOTS)]
    for iv in intervals:  # greedy: a job goes to the slot that freed up last before it started
        free = [s for s in slots if not s or s[-1][1] <= iv[0] + 0.05]
        (max(free, key=lambda s: s[-1][1] if s else -1.0) if free else min(slots, key=lambda s: s[-1][1])).append(iv)
    acc = {"before": SLOTS * (work_start - t_start), "spinup": 0.0, "gaps": 0.0, "tail": 0.0,
           "after": SLOTS * (t_end - work_end), "jobs": sum(e - s for s, e in intervals)}
    for s in slots:
        if not s:  # a slot that never ran a job was idle for the whole phase
            acc["spinup"] += work_end - work_start
            continue
        acc["spinup"] += s[0][0] - work_start
        acc["gaps"] += sum(b[0] - a[1] for a, b in zip(s, s[1:], strict=False))
        acc["tail"] += work_end - s[-1][1]
    acc["max_gap"] = max((b[0] - a[1] for s in slots for a, b in zip(s, s[1:], strict=False)), default=0.0)
    return acc


# -- the sides, each run in its own process ------------------------------------------------------


def _timed(marks: dict, name: str, fn):
    def wrapper(*args, **kwargs):
        t = time.time()
        try:
            return fn(*args, **kwargs)
        finally:
            marks[name] = (t, time.time())
    return wrapper


def run_kdbench(suite: str, store_dir: str, track: bool, address: str | None = None) -> dict:
    """`run_suite` with its phases timed by wrapping the runner's module-level steps (nothing edited)."""
    from kdbench import RunOptions, run_suite
    from kdbench.orchestrate import runner
    from kdbench.track.tracker import Tracker

    marks: dict[str, tuple[float, float]] = {}
    runner.init_ray = _timed(marks, "ray_init", runner.init_ray)
    runner._tracker = _timed(marks, "tracker_setup", runner._tracker)
    runner._report = _timed(marks, "report", runner._report)
    Tracker.close = _timed(marks, "mlflow_close", Tracker.close)
    tune_step = runner.run_tune

    def timed_tune(run, ray):
        t = time.time()
        from ray import tune  # its import is part of the cost, so it stays inside the timed region

        class TimedTuner(tune.Tuner):
            def __init__(self, *a, **k):
                marks["tune_import"] = (t, time.time())
                _timed(marks, "tuner_setup", super().__init__)(*a, **k)

            def fit(self):
                return _timed(marks, "fit", super().fit)()

        tune.Tuner = TimedTuner
        return _timed(marks, "tune_total", tune_step)(run, ray)

    runner.run_tune = timed_tune
    t0 = time.time()
    counts = run_suite(suite, RunOptions(store=store_dir, track=track, num_cpus=None if address else SLOTS,
                                         address=address))
    t1 = time.time()
    assert counts.run == counts.total and counts.failed == 0, counts.summary()
    return {"t_start": t0, "t_end": t1, "work": marks["fit"], "marks": marks,
            "tracking_complete": counts.tracking_complete}


def _bare_worker(chunk: list[dict], store_dir: str) -> None:
    import torch

    from kdbench.engine import run_job
    from kdbench.jobs import Job
    from kdbench.store import Store

    torch.set_num_threads(1)  # as the Ray trainable does for `cpus: 1`
    for job in chunk:
        run_job(Job.from_dict(job), Store(store_dir))


def run_bare(suite: str, store_dir: str) -> dict:
    import multiprocessing as mp

    from kdbench import expand, load_suite

    jobs = [e.job.to_dict() for e in expand(load_suite(suite)).entries]
    t0 = time.time()
    ctx = mp.get_context("spawn")  # fresh interpreters importing torch, as Ray's workers are
    procs = [ctx.Process(target=_bare_worker, args=(jobs[i::SLOTS], store_dir)) for i in range(SLOTS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0, p.exitcode
    t1 = time.time()
    return {"t_start": t0, "t_end": t1, "work": (t0, t1), "marks": {}}


def child(side: str, suite: str, out: str) -> None:
    from kdbench import expand, load_suite

    job_ids = [e.job_id for e in expand(load_suite(suite)).entries]
    if side in ("kdbench-pack1", "kdbench-pack8"):
        size = side.removeprefix("kdbench-pack")
        packed = suite.replace(".yaml", f"-pack{size}.yaml")
        Path(packed).write_text(Path(suite).read_text().replace("resources: {cpus: 1}",
                                                                f"resources: {{cpus: 1, jobs_per_trial: {size}}}"))
        suite = packed
    with tempfile.TemporaryDirectory(prefix=f"p1-{side}-") as store_dir:
        if side == "bare":
            res = run_bare(suite, store_dir)
        else:
            res = run_kdbench(suite, store_dir, side != "kdbench-notrack",
                              os.environ[WARM_ADDRESS] if side == "kdbench-warm" else None)
        intervals = job_intervals(store_dir, job_ids)
        trial_dirs = Path(store_dir, "ray", "p1-orchestration")
        trials = sum(d.name.startswith("job-") for d in trial_dirs.iterdir()) if trial_dirs.is_dir() else None
    res.update(side=side, wall=res["t_end"] - res["t_start"], jobs=len(intervals), trials=trials,
               job_mean=statistics.mean(e - s for s, e in intervals),
               slots=slot_accounting(intervals, res["t_start"], res["t_end"], *res["work"]),
               load=os.getloadavg())
    Path(out).write_text(json.dumps(res))
    if side != "bare":
        import ray

        ray.shutdown()


# -- the driver: interleaved repeats, the table, RESULTS.md ---------------------------------------


class WarmRay:
    """A local Ray head (`ray start --head`, 2 CPUs, its own temp dir, token auth off) for a kdbench-warm round,
    ended by killing exactly the processes that name its temp dir (never `ray stop`, which would stop every Ray
    on the machine)."""

    def __init__(self) -> None:
        import socket

        self.temp = tempfile.mkdtemp(prefix="p1r-", dir="/tmp")  # short: Ray's socket paths
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}

    def __enter__(self) -> WarmRay:
        ray_bin = str(Path(sys.executable).parent / "ray")
        subprocess.run([ray_bin, "start", "--head", "--port", str(self.port), "--num-cpus", str(SLOTS),
                        "--temp-dir", self.temp, "--include-dashboard", "false", "--disable-usage-stats"],
                       env=self.env, check=True, capture_output=True, timeout=120)
        return self

    def __exit__(self, *exc) -> None:
        import shutil
        import signal

        import psutil

        for proc in psutil.process_iter(["pid", "cmdline"]):
            try:
                if proc.pid != os.getpid() and any(self.temp in part for part in proc.info["cmdline"] or []):
                    proc.send_signal(signal.SIGKILL)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        shutil.rmtree(self.temp, ignore_errors=True)


def run_side(side: str, suite: str, tmp: str, rep: int, env: dict | None = None) -> dict:
    out, log = os.path.join(tmp, f"{side}-{rep}.json"), os.path.join(tmp, f"{side}-{rep}.log")
    with open(log, "w") as f:
        proc = subprocess.run([sys.executable, __file__, "--child", side, "--suite", suite, "--out", out],
                              stdout=f, stderr=subprocess.STDOUT, check=False, env=env)
    if proc.returncode != 0:
        sys.exit(f"{side} failed (exit {proc.returncode}):\n{Path(log).read_text()[-3000:]}")
    return json.loads(Path(out).read_text())


def per_job_overhead(wall: float, bare: float, jobs: int) -> float:
    """Seconds each job costs on top of the bare loop: SLOTS jobs run at once, so the extra wall time is
    spread over jobs / SLOTS jobs per slot."""
    return (wall - bare) / jobs * SLOTS


def summarize(results: list[dict], jobs: int) -> list[dict]:
    by_side = {s: [r for r in results if r["side"] == s] for s in SIDES}
    bare = statistics.median(r["wall"] for r in by_side["bare"])
    rows = []
    for side, rs in by_side.items():
        if not rs:
            continue
        wall = statistics.median(r["wall"] for r in rs)
        rows.append({"side": side, "walls": [r["wall"] for r in rs], "wall": wall, "ratio": wall / bare,
                     "per_job": per_job_overhead(wall, bare, jobs),
                     "job_mean": statistics.mean(r["job_mean"] for r in rs),
                     "ray_init": _mean_mark(rs, "ray_init"),
                     "trials": sorted({r.get("trials") for r in rs if r.get("trials") is not None}),
                     # contention-robust: slot-seconds not spent inside run_job, per job
                     "idle_per_job": statistics.mean(SLOTS * r["wall"] - r["slots"]["jobs"] for r in rs) / jobs})
    return rows


def _mean_mark(rs: list[dict], name: str) -> float | None:
    spans = [r["marks"][name][1] - r["marks"][name][0] for r in rs if name in r["marks"]]
    return statistics.mean(spans) if spans else None


def table(rows: list[dict]) -> str:
    lines = ["| side | wall s (runs) | median wall s | ratio vs bare | overhead s/job | mean job s | "
             "non-job slot-s/job | Ray init s | Tune trials |", "| --- " * 9 + "|"]
    for r in rows:
        ray = f"{r['ray_init']:.2f}" if r["ray_init"] is not None else "—"
        lines.append(f"| {r['side']} | {', '.join(f'{w:.1f}' for w in r['walls'])} | {r['wall']:.1f} | "
                     f"{r['ratio']:.3f} | {r['per_job']:+.2f} | {r['job_mean']:.2f} "
                     f"| {r['idle_per_job']:.2f} | {ray} | {', '.join(map(str, r['trials'])) or '—'} |")
    return "\n".join(lines)


PHASES = ("ray_init", "tracker_setup", "tune_import", "tuner_setup", "fit", "report", "mlflow_close")


def breakdown(results: list[dict]) -> str:
    """Mean over repeats, per side: the driver's phases (s) and the slot-seconds accounting."""
    lines = ["| side | " + " | ".join(PHASES) + " | slot-s: before fit | worker start-up | gaps (max) | tail | "
             "after fit | jobs | total = 2×wall |", "| --- " * (len(PHASES) + 8) + "|"]
    for side in SIDES:
        rs = [r for r in results if r["side"] == side]
        if not rs:
            continue
        phases = [_mean_mark(rs, p) for p in PHASES]
        acc = {k: statistics.mean(r["slots"][k] for r in rs) for k in rs[0]["slots"]}
        total = sum(acc[k] for k in ("before", "spinup", "gaps", "tail", "after", "jobs"))
        lines.append(f"| {side} | " + " | ".join("—" if p is None else f"{p:.2f}" for p in phases)
                     + f" | {acc['before']:.2f} | {acc['spinup']:.2f} | {acc['gaps']:.2f} ({acc['max_gap']:.2f})"
                     f" | {acc['tail']:.2f} | {acc['after']:.2f} | {acc['jobs']:.2f} | {total:.2f} |")
    return "\n".join(lines)


def machine() -> dict:
    import mlflow
    import ray
    import torch

    import kdbench

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "torch": torch.__version__,
            "ray": ray.__version__, "mlflow": mlflow.__version__, "kdbench": kdbench.__version__,
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=2, help="interleaved rounds of all sides")
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--n-train", type=int, default=8000, help="calibrated: ≈5 s per job on one core")
    ap.add_argument("--epochs", type=int, default=80)
    ap.add_argument("--sides", default=",".join(SIDES))
    ap.add_argument("--write-results", action="store_true", help=f"write {HERE / 'RESULTS.md'}")
    ap.add_argument("--render", metavar="RAW_JSON", help="re-render the tables and RESULTS.md from a raw.json")
    ap.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    ap.add_argument("--suite", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.suite, args.out)
    if args.render:
        return render(args)
    sides = [s for s in args.sides.split(",") if s]
    with tempfile.TemporaryDirectory(prefix="p1-") as tmp:
        suite = os.path.join(tmp, "suite.yaml")
        Path(suite).write_text(SUITE.format(jobs=args.jobs, n_train=args.n_train, epochs=args.epochs,
                                            seeds=", ".join(map(str, range(args.jobs)))))
        results, loads = [], [os.getloadavg()]
        for rep in range(args.repeats):
            for side in sides[rep % len(sides):] + sides[:rep % len(sides)]:  # rotate the order each round
                # The warm side's Ray runs only around its own rounds, so its idle daemons never slow the others.
                with WarmRay() if side == "kdbench-warm" else contextlib.nullcontext() as warm:
                    env = {**warm.env, WARM_ADDRESS: warm.address} if warm is not None else None
                    time.sleep(3 if warm is not None else 0)  # let the fresh head's daemons settle (not timed)
                    r = run_side(side, suite, tmp, rep, env)
                print(f"round {rep} {side:16s} wall {r['wall']:6.1f} s  load {r['load'][0]:.2f}", flush=True)
                results.append(r)
                loads.append(os.getloadavg())
        suite_text = Path(suite).read_text()
    rows = summarize(results, args.jobs)
    print(table(rows))
    print(breakdown(results))
    if args.write_results:
        (HERE / "raw.json").write_text(json.dumps({"results": results, "loads": loads, "suite": suite_text,
                                                   "argv": " ".join(sys.argv[1:])}, indent=1))
        write_results(rows, results, loads, machine(), suite_text, " ".join(sys.argv[1:]))


def render(args) -> None:
    raw = json.loads(Path(args.render).read_text())
    rows = summarize(raw["results"], args.jobs)
    print(table(rows))
    print(breakdown(raw["results"]))
    if args.write_results:
        write_results(rows, raw["results"], raw["loads"], machine(), raw.get("suite", ""), raw.get("argv", ""))


def write_results(rows, results, loads, mach, suite_text, argv) -> None:
    text = (HERE / "RESULTS.template.md").read_text() if (HERE / "RESULTS.template.md").exists() else DEFAULT_MD
    (HERE / "RESULTS.md").write_text(text.format(
        table=table(rows), breakdown=breakdown(results), suite=suite_text, argv=argv,
        loads=", ".join(f"{a:.2f}" for a, _, _ in loads), **mach))


DEFAULT_MD = """\
# P1 — orchestration overhead (generated by p1_orchestration.py; analysis appended by hand)

- date: {date}; machine: {nproc} cores, {cpu}
- python {python}, torch {torch}, ray {ray}, mlflow {mlflow}, kdbench {kdbench}
- 1-min load average before the run and after each side: {loads}
- command: `.venv/bin/python benchmarks/perf/p1/p1_orchestration.py {argv}`

## Wall time (median over interleaved rounds)

{table}

## Breakdown (means over rounds)

Phases are the driver's wall seconds. Slot-seconds split 2 × wall into: before the workers' phase
(`Tuner.fit` on the kdbench side), worker start-up (phase start → a slot's first job), gaps between
consecutive jobs on a slot (largest single gap in brackets), tail (a slot's last job → phase end),
after the phase (report + MLflow close), and the jobs' own `run_job` time.

{breakdown}

## The suite

```yaml
{suite}```
"""


if __name__ == "__main__":
    main()
