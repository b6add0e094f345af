"""Argo at scale: how big a run of N submissions makes Argo's objects, and how long its single pods take.

Two parts, both rerunnable on any machine, no cluster needed:

1. **The single-pod steps** (collect, restore, score, feedback, merge) run as Argo runs them:
   `python -m steps.<name> --workspace W ...` as a fresh process, on the example course, once
   with a few submissions and once with more (default 4 and 20; execute runs in between with
   no sandbox, untimed), each three times, keeping the least CPU time (user + system: the
   steps are CPU-bound, and on a shared machine wall time mostly measures the other load; wall
   times are recorded too). The two points give a start-up cost and a cost per submission; the
   time at N is extrapolated LINEARLY from them, a line through two measured points, not a
   measurement at N. The same run counts the files each submission leaves per artifact
   directory, which the S3 request count below uses.
2. **The controller's objects** for N submissions (tests/argo_scale_model.py): the workflow
   object (plain and with compressedNodes), the withParam list, the memoization ConfigMap,
   the largest WorkflowTaskResult and the S3 requests, each against its limit, for the design
   in pipelines/argo/shards.py (one run per shard of at most SHARD_SIZE) and, for comparison, for
   the whole class in one run (what the template did before shards: the same templates).

    python bench/argo_scale.py                                  # N = 10, 100, 1000, 5000
    python bench/argo_scale.py --sizes 1000,5000 --skip-steps   # the simulation only (~1 min)
    python bench/argo_scale.py --json bench/results/argo-scale-2026-12-01.json

Prints the table docs/performance.md ("Argo at scale") keeps, and writes the raw numbers as JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # the controller model is test code (tests/argo_scale_model.py)

from argo_scale_model import FILES_PER_SUBMISSION, LIMITS, MARGIN, simulate  # noqa: E402

from pipelines.argo.shards import SHARD_SIZE  # noqa: E402

STEPS = ("collect", "restore", "score", "feedback", "merge")


def _make_course_module():
    spec = importlib.util.spec_from_file_location("make_course", REPO / "examples" / "make_course.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _step(name: str, args: list[str]) -> tuple[float, float]:
    """Run one step CLI as a pod would (a fresh interpreter); its wall and CPU seconds.

    CPU (user + system of the process and its children) is what the fit uses: the steps are
    CPU-bound, and on a shared machine wall time mostly measures the other load."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", f"steps.{name}", *args], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    took = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"steps.{name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return took, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure_steps(sizes: list[int], root: Path, repeat: int = 3) -> dict[str, Any]:
    """Each single-pod step's wall time at each size (the least of `repeat` runs: load only adds),
    the fitted line, and files per submission."""
    from steps.collect import collect
    from steps.execute import execute
    from steps.restore import restore
    from steps.sandbox import Limits

    course = _make_course_module().make_course(root / "course", students=max(sizes), seed=15)
    everyone = sorted(p.name for p in (course / "submitted").iterdir())
    executed_from = root / "executed-all"
    ws_all = root / "ws-all"
    collect(course, "ps1", ws_all)
    restore(ws_all)
    for s in everyone:  # execute once, untimed, with no sandbox: score and merge need its output
        execute(ws_all, s, "none", Limits())
    shutil.copytree(ws_all / "executed", executed_from)
    times: dict[str, dict[int, float]] = {s: {} for s in STEPS}  # CPU seconds
    walls: dict[str, dict[int, float]] = {s: {} for s in STEPS}

    def best(n: int, step: str, args: list[str]) -> None:
        runs = [_step(step, args) for _ in range(repeat)]
        walls[step][n] = min(w for w, _ in runs)
        times[step][n] = min(c for _, c in runs)

    for n in sizes:
        ws = root / f"ws-{n}"
        students = everyone[:n]
        best(
            n,
            "collect",
            [
                "--workspace",
                str(ws),
                "--course-dir",
                str(course),
                "--assignment",
                "ps1",
                "--run-id",
                f"bench-{n}",
                "--students",
                *students,
            ],
        )
        best(
            n,
            "restore",
            [
                "--workspace",
                str(ws),
                "--strict",
                "false",
                "--emit-students",
                str(ws / "students.json"),
                "--class-size",
                str(n),
            ],
        )
        (ws / "executed").mkdir(exist_ok=True)
        for s in students:
            shutil.copytree(executed_from / s, ws / "executed" / s, dirs_exist_ok=True)
        best(n, "score", ["--workspace", str(ws)])
        best(n, "feedback", ["--workspace", str(ws), "--hidden-tests", "redact"])
        best(n, "merge", ["--workspace", str(ws)])
    lo, hi = min(sizes), max(sizes)
    fit = {}
    for s, t in times.items():
        per = max(0.0, (t[hi] - t[lo]) / (hi - lo)) if hi > lo else t[hi] / hi  # noise can tilt a flat line down
        fit[s] = {"start_s": round(max(0.0, t[lo] - per * lo), 3), "per_submission_s": round(per, 4)}
    ws = root / f"ws-{hi}"
    files = {}
    for d in FILES_PER_SUBMISSION:
        per_student = [
            sum(1 for f in (ws / d / s).rglob("*") if f.is_file()) for s in everyone[:hi] if (ws / d / s).is_dir()
        ]
        files[d] = round(sum(per_student) / len(per_student)) if per_student else FILES_PER_SUBMISSION[d]
    return {
        "sizes": sizes,
        "repeat": repeat,
        "load_average": os.getloadavg(),
        "cpu_seconds": {s: {str(n): round(v, 3) for n, v in t.items()} for s, t in times.items()},
        "wall_seconds": {s: {str(n): round(v, 3) for n, v in t.items()} for s, t in walls.items()},
        "fit": fit,
        "files_per_submission": files,
    }


def step_seconds(fit: dict[str, Any], n: int) -> dict[str, float]:
    return {s: round(f["start_s"] + f["per_submission_s"] * n, 1) for s, f in fit.items()}


def simulate_all(sizes: list[int], files: dict[str, int] | None) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        for design, shard_size in (("one run", max(n, 1)), (f"shards of <= {SHARD_SIZE}", None)):
            if design == "one run" and n <= SHARD_SIZE:
                continue  # the same as the sharded design
            worst: dict[str, Any] = {}
            for scenario in ("first-run", "regrade"):
                for argo in ("v4", "v3"):
                    t = time.perf_counter()
                    m = simulate(n, scenario=scenario, argo=argo, shard_size=shard_size, files=files)
                    d = m.as_dict()
                    d["simulate_seconds"] = round(time.perf_counter() - t, 1)
                    d["design"] = design
                    worst.setdefault("runs", []).append(d)
            runs = worst["runs"]
            row = {
                "n": n,
                "design": design,
                "shards": runs[0]["shards"],
                "largest_shard": runs[0]["largest_shard"],
                "pods": max(r["pods"] for r in runs),
                "nodes": max(r["nodes"] for r in runs),
                "workflow_plain": max(r["workflow_plain"] for r in runs),
                "workflow_compressed": max(r["workflow_compressed"] for r in runs),
                "withparam": max(max(r["withparam"].values(), default=0) for r in runs),
                "configmap": max(max(r["configmaps"].values(), default=0) for r in runs),
                "task_result": max(r["task_result_max"] for r in runs),
                "s3_first_run": next(r["s3_total"] for r in runs if r["scenario"] == "first-run"),
                "s3_regrade": next(r["s3_total"] for r in runs if r["scenario"] == "regrade"),
                "s3_busiest_pod": max(max(r["s3_per_pod"].values()) for r in runs),
                "s3_busiest_step": max(((v, k) for r in runs for k, v in r["s3_per_pod"].items()))[1],
                "fits": all(c["fits_with_margin"] for r in runs for c in r["checks"].values()),
                "runs": runs,
            }
            rows.append(row)
            print(f"  simulated N={n} {design}: {sum(r['simulate_seconds'] for r in runs):.0f} s", file=sys.stderr)
    return rows


def kib(b: int) -> str:
    return f"{b / 1024:,.0f}"


def table(rows: list[dict[str, Any]], fit: dict[str, Any] | None) -> str:
    lim = LIMITS
    head = (
        f"limits: workflow object {kib(lim['workflow'])} KiB (MAX_WORKFLOW_SIZE),"
        f" withParam {kib(lim['withparam'])} KiB, "
        f"ConfigMap {kib(lim['configmap'])} KiB (MaxSecretSize), etcd object {kib(lim['etcd'])} KiB;"
        " a design fits when every size is under "
        f"{int((1 - MARGIN) * 100)} % of its limit, in all of: first run / regrade, Argo v4 / v3\n"
    )
    cols = (
        "      N  design             runs  largest  status plain KiB  compressed KiB  withParam KiB  memo CM KiB"
        "  S3 requests 1st/regrade  busiest pod  fits"
    )
    lines = [head, cols]
    for r in rows:
        lines.append(
            f"{r['n']:7,}  {r['design']:<17} {r['shards']:5}  {r['largest_shard']:7,}  {kib(r['workflow_plain']):>16}"
            f"  {kib(r['workflow_compressed']):>14}  "
            f"{kib(r['withparam']):>13}  {kib(r['configmap']):>11}  {r['s3_first_run']:>11,}/{r['s3_regrade']:<11,}"
            f"  {r['s3_busiest_pod']:>7,} {r['s3_busiest_step']:<6} {'yes' if r['fits'] else 'NO'}"
        )
    if fit:
        lines.append("")
        lines.append(
            "single-pod steps, CPU seconds for the largest run"
            " (a + b x N, fitted on two measured sizes; linear extrapolation):"
        )
        lines.append("      N  design             " + "  ".join(f"{s:>8}" for s in STEPS))
        for r in rows:
            secs = step_seconds(fit, r["largest_shard"])
            lines.append(f"{r['n']:7,}  {r['design']:<17}  " + "  ".join(f"{secs[s]:8.1f}" for s in STEPS))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10,100,1000,5000", help="class sizes to simulate")
    p.add_argument("--steps-n", default="4,20", help="two class sizes to time the single-pod steps at (default 4,20)")
    p.add_argument(
        "--skip-steps", action="store_true", help="only the simulation (files per submission: the model's defaults)"
    )
    p.add_argument("--repeat", type=int, default=3, help="runs of each step at each size; the least counts (default 3)")
    p.add_argument(
        "--json",
        type=Path,
        default=None,
        help="write the raw numbers here (default bench/results/argo-scale-DATE.json)",
    )
    a = p.parse_args(argv)
    sizes = [int(x) for x in a.sizes.split(",") if x]
    out: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "date": dt.date.today().isoformat(),
        },
        "limits": LIMITS,
        "margin": MARGIN,
        "shard_size": SHARD_SIZE,
    }
    fit = None
    files = None
    if not a.skip_steps:
        with tempfile.TemporaryDirectory(prefix="gradeflow-argo-scale-") as tmp:
            steps = measure_steps([int(x) for x in a.steps_n.split(",")], Path(tmp), a.repeat)
        out["steps"] = steps
        fit = steps["fit"]
        files = steps["files_per_submission"]
        print(
            "single-pod steps measured, CPU s:",
            json.dumps(steps["cpu_seconds"]),
            "wall s:",
            json.dumps(steps["wall_seconds"]),
            file=sys.stderr,
        )
    out["rows"] = simulate_all(sizes, files)
    print(table(out["rows"], fit))
    path = a.json or REPO / "bench" / "results" / f"argo-scale-{out['machine']['date']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"\nraw numbers: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
