"""Benchmark: sandboxed `gradeflow grade --jobs 2` against `nbgrader autograde` on one course.

For each N it builds the example course with N submissions (cheap variants: no infinite
loops), makes fresh copies, and times `nbgrader autograde ps1` and `gradeflow grade ps1` (per
sandbox) on them in the same run. It reports wall time, CPU time and peak memory of the whole
process tree (cgroups when run as root), per-submission overhead (time not spent in the
notebooks' own cells, from nbclient's per-cell timings in the output notebooks) and the ratio;
the per-notebook overhead of a bare `jupyter nbconvert --execute` of the same notebooks, the
yardstick for overhead; and, per gradeflow run, where its time went (from the run's records).

    python bench/bench.py                                      # N = 60, bubblewrap
    python bench/bench.py --sizes 10,30,60,100                 # how cost grows
    python bench/bench.py --sandbox bubblewrap,podman --json bench.json
    python bench/bench.py --tools gradeflow --nbconvert-sample 0   # gradeflow alone, quickly
    python bench/bench.py --tools gradeflow --jobs 1,2,4       # scaling: speed-up per job count
    python bench/bench.py --tools gradeflow --code ../main     # another checkout's gradeflow (before/after)

Every gradeflow run also prints its phase split, per submission in slot-seconds, from the run's
own records: restore, sandbox start, cells, kernels+papermill, score, and the parent's course
writes; and, when nbgrader ran too, whether every grade in its gradebook (auto score, max score,
needs manual grade, per student, notebook and cell) is identical to nbgrader's. When one is
not, the bench says which and exits 1: the times do not count.
    python bench/bench.py --integrity 10                       # the integrity probes' cost only

`--integrity N` grades N submissions once, then executes each one again with and without the
integrity probes (steps/integrity.py), interleaved (ABBA order per submission, so load that
drifts hits both alike), after one untimed execution each way, and reports execute time per
submission both ways, the difference, and the probes' own time from execute.json.
    python bench/bench.py --feedback-pairs 3                   # what --feedback adds, and nbgrader generate_feedback
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import nbformat

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # the parity tests' gradebook reader (tests/parity.py)

from parity import gradebook_grades  # noqa: E402

CGROUP_V1 = Path("/sys/fs/cgroup")
NOTEBOOKS_PER_SUBMISSION = 2  # the example course's ps1: problems and data_analysis


def _make_course_module():
    spec = importlib.util.spec_from_file_location("make_course", REPO / "examples" / "make_course.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


PODMAN_CGROUP = "libpod_parent"  # where rootful podman (cgroupfs manager, v1) puts every container


def _remove_cgroup(group: Path, wait: float = 10.0) -> None:
    """rmdir a bench cgroup once the processes the command left are gone (a worker may still be
    ending for a moment after the command exits); name the ones that stay."""
    deadline = time.monotonic() + wait
    while (pids := (group / "cgroup.procs").read_text().split()) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pids:
        names = [
            Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120]
            for p in pids
            if Path(f"/proc/{p}").exists()
        ]
        raise SystemExit(f"processes outlived the measured command by {wait:.0f} s: {names}")
    group.rmdir()


def measured(cmd: list[str], cwd: Path, name: str, containers: bool = False) -> dict[str, Any]:
    """Run cmd; return wall seconds, CPU seconds and peak memory of its whole process tree.

    `containers`: the command starts podman containers, which live in podman's own cgroup, not
    in the command's: add their CPU, and their peak memory to the command's (an upper bound).
    """
    tag = f"gradeflow-bench-{os.getpid()}-{name}"
    groups = (
        {c: CGROUP_V1 / c / tag for c in ("memory", "cpuacct")}
        if os.geteuid() == 0 and (CGROUP_V1 / "memory").is_dir()
        else {}
    )
    if groups:
        for g in groups.values():
            g.mkdir(exist_ok=True)
        joins = " && ".join(f"echo $$ > {g}/cgroup.procs" for g in groups.values())
        cmd = ["sh", "-c", f'{joins} && exec "$@"', "sh", *cmd]
    pods = (
        {c: CGROUP_V1 / c / PODMAN_CGROUP for c in ("memory", "cpuacct")}
        if containers and groups and (CGROUP_V1 / "cpuacct" / PODMAN_CGROUP).is_dir()
        else {}
    )
    if pods:
        (pods["memory"] / "memory.max_usage_in_bytes").write_text("0")  # v1: resets the peak
        pods_cpu0 = int((pods["cpuacct"] / "cpuacct.usage").read_text())
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    sampler = RssSampler([groups["memory"], *([pods["memory"]] if pods else [])]) if groups else None
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    rss = sampler.stop() if sampler else None
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if groups:
        peak = int((groups["memory"] / "memory.max_usage_in_bytes").read_text()) / 2**20
        cpu = int((groups["cpuacct"] / "cpuacct.usage").read_text()) / 1e9
        for g in groups.values():
            _remove_cgroup(g)
        how = "cgroup (whole tree)"
        if pods:
            peak += int((pods["memory"] / "memory.max_usage_in_bytes").read_text()) / 2**20
            cpu += (int((pods["cpuacct"] / "cpuacct.usage").read_text()) - pods_cpu0) / 1e9
            how += " + podman's containers (peaks added: an upper bound)"
    else:
        peak = after.ru_maxrss / 1024
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        how = "largest child RSS; CPU of waited-for children"
    if proc.returncode not in (0, 1):  # nbgrader exits 1 when some submission failed
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    out = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 1), "peak_mb": round(peak, 1), "peak_how": how}
    if rss is not None:
        out["peak_rss_mb"] = round(rss, 1)  # process memory only: no page cache of the files written
    return out


class RssSampler:
    """Samples the anonymous memory (`total_rss`, no page cache) of memory cgroups, keeps the max."""

    def __init__(self, groups: list[Path], every: float = 0.1) -> None:
        self.groups, self.every, self.peak = groups, every, 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> float:
        total = 0
        # plus bubblewrap's per-submission sandbox cgroups, which live outside the command's
        for g in [*self.groups, *(CGROUP_V1 / "memory").glob("gradeflow-[0-9]*")]:
            try:
                stat = dict(line.split() for line in (g / "memory.stat").read_text().splitlines())
                total += int(stat.get("total_rss", 0))
            except OSError:
                pass
        return total / 2**20

    def _run(self) -> None:
        while not self._done.wait(self.every):
            self.peak = max(self.peak, self._sample())

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        return self.peak


def cell_seconds(notebooks: list[Path]) -> float:
    """Time spent inside the notebooks' own cells (nbclient's execute_input → execute_reply)."""
    total = 0.0
    for path in notebooks:
        nb = nbformat.read(str(path), as_version=4)
        for cell in nb.cells:
            t = cell.get("metadata", {}).get("execution", {})
            if "iopub.execute_input" in t and "shell.execute_reply" in t:
                a = dt.datetime.fromisoformat(t["iopub.execute_input"].replace("Z", "+00:00"))
                b = dt.datetime.fromisoformat(t["shell.execute_reply"].replace("Z", "+00:00"))
                total += (b - a).total_seconds()
    return total


def profile(run_dir: Path) -> dict[str, Any]:
    """Where a gradeflow run's time went, from its own records (results.json timings, and the
    `seconds` of every restore.json / execute.json / score.json). Per submission, in slot-seconds:
    restore; sandbox start (making the sandbox and handing it the files, then the first kernel's
    wait for the zygote: ~0 when the slot's sandbox was started ahead); cells (nbclient's own
    timings); kernels (the rest of execute: forking the kernels, papermill, the integrity probes,
    teardown); score; and, in the parent, the course writes (merge, per submission)."""
    results = json.loads((run_dir / "results" / "results.json").read_text())
    t = results.get("timings", {})

    def mean(values: list[float]) -> float:
        return round(sum(values) / len(values), 3) if values else 0.0

    recs = {
        step: [json.loads(p.read_text()) for p in sorted(run_dir.glob(f"{d}/*/{step}.json"))]
        for step, d in (("restore", "restored"), ("execute", "executed"), ("score", "scored"))
    }
    teardown = [r["detail"].get("teardown", {}) for r in recs["execute"]]
    n = max(1, len(recs["execute"]))
    execute_s = mean([r["seconds"] for r in recs["execute"]])
    sandbox_s = mean(
        [
            r["detail"].get("sandbox_ready_s", 0.0) + r["detail"].get("teardown", {}).get("zygote_ready_s", 0.0)
            for r in recs["execute"]
        ]
    )
    cells_s = round(cell_seconds(sorted(run_dir.glob("executed/*/*.ipynb"))) / n, 3)
    return {
        "startup_and_collect_s": t.get("collect_s"),
        "results_and_report_s": round(t["results_s"] - t["graded_s"], 3) if "results_s" in t else None,
        "per_submission": {
            "restore_s": mean([r["seconds"] for r in recs["restore"]]),
            "execute_s": execute_s,
            "of_which_sandbox_start_s": sandbox_s,
            "of_which_zygote_ready_s": mean([d["zygote_ready_s"] for d in teardown if "zygote_ready_s" in d]),
            "of_which_cells_s": cells_s,
            "of_which_kernels_s": round(execute_s - sandbox_s - cells_s, 3),
            "score_s": mean([r["seconds"] for r in recs["score"]]),
            "course_write_s": round(t.get("course_writes_s", 0) / n, 3),
        },
        "prestarted": sum(bool(r["detail"].get("prestarted")) for r in recs["execute"]),
        "executed": len(recs["execute"]),
        "kernels": sum(d.get("kernels", 0) for d in teardown),
        "kernels_forked": sum(d.get("kernels_forked", 0) for d in teardown),
        "largest_sandbox_peak_mb": max((d.get("memory_peak_mb") or 0 for d in teardown), default=0),
    }


def gradeflow_cmd(course: Path, jobs: int, sandbox: str, *extra: str) -> list[str]:
    """`gradeflow grade` of the example course's ps1, run from the checkout `measured` is given."""
    return [
        sys.executable,
        "-m",
        "pipelines.cli",
        "grade",
        str(course),
        "ps1",
        "--jobs",
        str(jobs),
        "--sandbox",
        sandbox,
        "--json",
        *extra,
    ]


def grade_run(base: Path, course: Path, n: int, jobs: int, sandbox: str, code: Path) -> dict[str, Any]:
    """One timed `gradeflow grade` of a fresh copy of `base`, with its profile."""
    shutil.copytree(base, course)
    r = measured(
        gradeflow_cmd(course, jobs, sandbox),
        code,
        f"{course.parent.name}-{course.name}",
        containers=sandbox == "podman",
    )
    run_dir = sorted((course / "gradeflow_runs").glob("ps1-*"))[-1]
    r["jobs"] = jobs
    r["cell_s"] = round(cell_seconds(sorted(run_dir.glob("executed/*/*.ipynb"))), 2)
    # with J jobs, J notebooks run at once: what a submission costs is slot-time, wall x J
    r["slot_s_per_submission"] = round(r["wall_s"] * jobs / n, 3)
    r["overhead_per_submission_s"] = round((r["wall_s"] * jobs - r["cell_s"]) / n, 3)
    r["profile"] = profile(run_dir)
    sandbox_peak = r["profile"]["largest_sandbox_peak_mb"]
    if sandbox != "podman" and sandbox_peak:
        # the kernels live in per-submission cgroups of their own, outside the command's:
        # add the largest of them once per job (an upper bound)
        r["peak_mb"] = round(r["peak_mb"] + jobs * sandbox_peak, 1)
        r["peak_how"] += f" + {jobs} x the largest sandbox cgroup peak ({sandbox_peak:.0f} MiB; an upper bound)"
    return {"tool": f"gradeflow/{sandbox}", **r}


def compare_scores(nbgrader_course: Path, course: Path) -> dict[str, Any]:
    """Every grade of one tool's run against nbgrader's on the same submissions: the speed
    figures only count when the grades are the same."""
    want, got = gradebook_grades(nbgrader_course), gradebook_grades(course)
    different = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))
    return {
        "grades": len(want),
        "identical": len(want.keys() - set(different)),
        "different": [{"grade": list(k), "nbgrader": want.get(k), "gradeflow": got.get(k)} for k in different[:20]],
        "different_count": len(different),
    }


def bench_size(
    n: int,
    jobs: list[int],
    sandboxes: list[str],
    tools: list[str],
    root: Path,
    nbconvert_sample: int,
    code: Path = REPO,
) -> dict[str, Any]:
    mc = _make_course_module()
    base = mc.make_course(root / f"n{n}" / "base", students=n, seed=n)
    out: dict[str, Any] = {"submissions": n, "jobs": jobs, "runs": []}

    if "nbgrader" in tools:
        nbg = root / f"n{n}" / "nbgrader"
        shutil.copytree(base, nbg)
        r = measured([sys.executable, "-m", "nbgrader", "autograde", "ps1", "--force"], nbg, f"nbgrader-{n}")
        r["jobs"] = 1
        r["cell_s"] = round(cell_seconds(sorted((nbg / "autograded").glob("*/ps1/*.ipynb"))), 2)
        r["slot_s_per_submission"] = round(r["wall_s"] / n, 3)
        r["overhead_per_submission_s"] = round((r["wall_s"] - r["cell_s"]) / n, 3)
        out["runs"].append({"tool": "nbgrader", **r})

    if "gradeflow" in tools:
        nbg_run = next((x for x in out["runs"] if x["tool"] == "nbgrader"), None)
        for sandbox in sandboxes:
            first = None
            for j in jobs:
                course = root / f"n{n}" / f"gradeflow-{sandbox}-j{j}"
                r = grade_run(base, course, n, j, sandbox, code)
                first = first or r
                r["speedup"] = round(first["wall_s"] / r["wall_s"], 2)  # against the first job count given
                if nbg_run:
                    r["ratio_wall"] = round(r["wall_s"] / nbg_run["wall_s"], 3)
                    r["scores"] = compare_scores(root / f"n{n}" / "nbgrader", course)
                out["runs"].append(r)

    if nbconvert_sample:
        # what nbgrader executed (restored cells, hidden tests) when it ran, else the submissions
        sample = (
            sorted((root / f"n{n}" / "nbgrader").glob("autograded/*/ps1/*.ipynb"))[:nbconvert_sample]
            or sorted(base.glob("submitted/*/ps1/*.ipynb"))[:nbconvert_sample]
        )
        walls, cells = 0.0, 0.0
        for nb in sample:
            with tempfile.TemporaryDirectory() as tmp:
                work = Path(tmp) / "work"
                shutil.copytree(nb.parent, work)
                t0 = time.monotonic()
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "jupyter",
                        "nbconvert",
                        "--to",
                        "notebook",
                        "--execute",
                        "--allow-errors",
                        "--output",
                        "out.ipynb",
                        nb.name,
                    ],
                    cwd=work,
                    capture_output=True,
                )
                walls += time.monotonic() - t0
                cells += cell_seconds([work / "out.ipynb"]) if (work / "out.ipynb").exists() else 0.0
        per_nb = (walls - cells) / max(1, len(sample))
        out["nbconvert_overhead_per_notebook_s"] = round(per_nb, 3)
        for r in out["runs"]:
            if r["tool"].startswith("gradeflow"):
                r["overhead_vs_nbconvert"] = round(
                    r["overhead_per_submission_s"] / (per_nb * NOTEBOOKS_PER_SUBMISSION), 3
                )
    return out


def bench_feedback(n: int, jobs: int, sandbox: str, root: Path, pairs: int) -> dict[str, Any]:
    """What `--feedback` adds to a run: runs without and with it, interleaved (off, on, off, on,
    ...) so that load from other processes falls on both alike, each on a fresh copy of the
    course; then `nbgrader generate_feedback` on the course gradeflow graded (the second pass
    nbgrader needs for the same pages)."""
    mc = _make_course_module()
    base = mc.make_course(root / f"fb{n}" / "base", students=n, seed=n)
    runs: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    feedback_s: list[float] = []
    last = None
    for i in range(pairs):
        for mode in ("off", "on"):
            gf = root / f"fb{n}" / f"gradeflow-{mode}-{i}"
            shutil.copytree(base, gf)
            extra = ["--feedback"] if mode == "on" else []
            r = measured(
                gradeflow_cmd(gf, jobs, sandbox, *extra),
                REPO,
                f"gradeflow-fb-{mode}-{n}-{i}",
                containers=sandbox == "podman",
            )
            runs[mode].append(r["wall_s"])
            cpu[mode].append(r["cpu_s"])
            print(
                f"  {n} submissions, {'with' if mode == 'on' else 'without'} --feedback (pair {i + 1}/{pairs}):"
                f" {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU",
                flush=True,
            )
            if mode == "on":
                run_dir = sorted((gf / "gradeflow_runs").glob("ps1-*"))[-1]
                feedback_s += [json.loads(p.read_text())["seconds"] for p in run_dir.glob("feedback/*/feedback.json")]
                last = gf
            else:
                shutil.rmtree(gf, ignore_errors=True)
    assert last is not None and len(list(last.glob("feedback/*/ps1/*.html"))) > 0, (
        "the runs with --feedback wrote no pages"
    )
    nbg = measured(
        [sys.executable, "-m", "nbgrader", "generate_feedback", "ps1", "--force"], last, f"nbgrader-feedback-{n}"
    )
    med = {k: sorted(v)[len(v) // 2] for k, v in runs.items()}
    return {
        "submissions": n,
        "jobs": jobs,
        "sandbox": sandbox,
        "wall_s": runs,
        "cpu_s": cpu,
        "median_wall_s": med,
        "added_wall_pct": round(100 * (med["on"] - med["off"]) / med["off"], 1),
        "pairwise_added_wall_pct": [round(100 * (b - a) / a, 1) for a, b in zip(runs["off"], runs["on"])],
        "feedback_step_s_per_submission": round(sum(feedback_s) / max(1, len(feedback_s)), 3),
        "nbgrader_generate_feedback": {k: nbg[k] for k in ("wall_s", "cpu_s")},
    }


def feedback_lines(fb: dict[str, Any]) -> str:
    m = fb["median_wall_s"]
    return "\n".join(
        [
            f"{fb['submissions']:>4} submissions, --jobs {fb['jobs']}, {fb['sandbox']}:"
            f" without --feedback {', '.join(f'{w:.1f}' for w in fb['wall_s']['off'])} s; "
            f"with {', '.join(f'{w:.1f}' for w in fb['wall_s']['on'])} s (interleaved)",
            f"     median {m['off']:.1f} -> {m['on']:.1f} s: +{fb['added_wall_pct']:.1f}%"
            f" (pairwise {', '.join(f'{x:+.1f}%' for x in fb['pairwise_added_wall_pct'])}); "
            f"feedback step {fb['feedback_step_s_per_submission']:.3f} s per submission in a worker",
            "     nbgrader generate_feedback on the same graded course, afterwards:"
            f" {fb['nbgrader_generate_feedback']['wall_s']:.1f} s wall,"
            f" {fb['nbgrader_generate_feedback']['cpu_s']:.1f} s CPU",
        ]
    )


def integrity_cost(n: int, sandbox: str, root: Path, rounds: int = 2) -> dict[str, Any]:
    """Execute time per submission with and without the integrity probes, interleaved."""
    sys.path.insert(0, str(REPO))
    from pipelines.local import GradeOptions, grade
    from steps.records import StepRecord, read_json
    from steps.sandbox import Limits, get_sandbox

    course = _make_course_module().make_course(root / f"integrity-{n}-{sandbox}", students=n, seed=n)
    results = grade(course, "ps1", GradeOptions(jobs=1, sandbox=sandbox))
    ws = course / "gradeflow_runs" / results["run_id"]
    config = read_json(ws / "snapshot.json").get("config", {})
    times: dict[bool, list[float]] = {True: [], False: []}
    probe_s, probes, findings = [], 0, 0
    # Untimed, one of each first: this process's first kernel start imports IPython (jupyter_client's
    # kernelspec lookup, about 0.4 s), which would otherwise count against whichever runs first.
    warm = ws / "restored" / results["students"][0]["student"]
    for on in (True, False):
        box = get_sandbox(sandbox)
        box.integrity = on
        box.execute_submission(
            warm / "work",
            [o.notebook for o in StepRecord.load(warm / "restore.json").notebooks if o.status in ("ok", "repaired")],
            root / f"integrity-warm-{sandbox}-{on}",
            Limits(),
            config,
        )
    for r in range(rounds):
        for i, sub in enumerate(results["students"]):
            student = sub["student"]
            restored = ws / "restored" / student
            notebooks = [
                o.notebook
                for o in StepRecord.load(restored / "restore.json").notebooks
                if o.status in ("ok", "repaired")
            ]
            order = [True, False] if (i + r) % 2 == 0 else [False, True]
            for on in order:
                box = get_sandbox(sandbox)
                box.integrity = on
                out = root / f"integrity-out-{sandbox}-{student}-{on}"
                shutil.rmtree(out, ignore_errors=True)
                t0 = time.monotonic()
                rec = box.execute_submission(restored / "work", notebooks, out, Limits(), config)
                times[on].append(time.monotonic() - t0)
                if on:
                    summaries = [o.detail.get("integrity", {}) for o in rec.notebooks]
                    probe_s.append(sum(s.get("seconds", 0.0) for s in summaries))
                    probes += sum(s.get("probes", 0) for s in summaries)
                    findings += sum(len(s.get("findings", [])) for s in summaries)
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    with_s, without_s = mean(times[True]), mean(times[False])
    return {
        "submissions": n,
        "sandbox": sandbox,
        "executions_each_way": len(times[True]),
        "execute_with_probes_s": round(with_s, 3),
        "execute_without_probes_s": round(without_s, 3),
        "difference_s": round(with_s - without_s, 3),
        "difference_pct": round(100 * (with_s - without_s) / without_s, 1),
        "probe_self_time_s": round(mean(probe_s), 3),
        "probe_self_time_pct": round(100 * mean(probe_s) / without_s, 1),
        "probes_per_submission": round(probes / len(probe_s), 1),
        "probe_ms": round(1000 * sum(probe_s) / probes, 1),
        "findings": findings,
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'N':>4} {'tool':20} {'jobs':>4} {'wall s':>8} {'cpu s':>7} {'cells s':>8}"
        f" {'slot-s/sub':>10} {'ovh/sub s':>10}"
        f" {'peak MiB':>9} {'rss MiB':>8}  {'ratio':>6} {'speed-up':>8}"
    ]
    for row in rows:
        for r in row["runs"]:
            ratio = f"{r['ratio_wall']:.2f}x" if "ratio_wall" in r else ""
            speedup = f"{r['speedup']:.2f}x" if "speedup" in r else ""
            lines.append(
                f"{row['submissions']:>4} {r['tool']:20} {r['jobs']:>4} {r['wall_s']:>8.1f} {r['cpu_s']:>7.1f}"
                f" {r['cell_s']:>8.1f}"
                f" {r['slot_s_per_submission']:>10.3f} "
                f"{r['overhead_per_submission_s']:>10.3f} {r['peak_mb']:>9.0f}"
                f" {r.get('peak_rss_mb', float('nan')):>8.0f}"
                f"  {ratio:>6} {speedup:>8}"
            )
        if "nbconvert_overhead_per_notebook_s" in row:
            vs = ", ".join(
                f"{r['tool']} {r['overhead_vs_nbconvert']:.2f}" for r in row["runs"] if "overhead_vs_nbconvert" in r
            )
            lines.append(
                f"{'':>4} bare nbconvert --execute overhead per notebook:"
                f" {row['nbconvert_overhead_per_notebook_s']:.3f} s;"
                f" per-submission overhead / ({NOTEBOOKS_PER_SUBMISSION} x that): {vs}"
            )
    return "\n".join(lines)


def profile_lines(rows: list[dict[str, Any]]) -> str:
    """The phase split of every gradeflow run (see `profile`), one line each."""
    lines = []
    for row in rows:
        for r in row["runs"]:
            if "profile" not in r:
                continue
            p, per = r["profile"], r["profile"]["per_submission"]
            lines.append(
                f"{row['submissions']:>4} {r['tool']:20} jobs {r['jobs']}:"
                f" start+collect {p['startup_and_collect_s']:.1f} s"
                f" | per submission, slot-s: restore {per['restore_s']:.3f}, "
                f"sandbox start {per['of_which_sandbox_start_s']:.3f}"
                f" ({p['prestarted']}/{p['executed']} started ahead),"
                f" cells {per['of_which_cells_s']:.3f}, "
                f"kernels+papermill {per['of_which_kernels_s']:.3f}, score {per['score_s']:.3f};"
                f" in the parent: course write {per['course_write_s']:.3f} | "
                f"results+report {p['results_and_report_s']:.1f} s"
                f" | kernels {p['kernels']} ({p['kernels_forked']} forked)"
                f"{score_line(r['scores']) if 'scores' in r else ''}"
            )
    return "\n".join(lines)


def score_line(scores: dict[str, Any]) -> str:
    if not scores["different_count"]:
        return f" | scores: all {scores['grades']} grades identical to nbgrader's"
    first = scores["different"][0]
    return (
        f" | scores: {scores['different_count']} of {scores['grades']} grades DIFFERENT from nbgrader's,"
        f" e.g. {'/'.join(first['grade'])}: nbgrader {first['nbgrader']}, gradeflow {first['gradeflow']}"
    )


def integrity_line(r: dict[str, Any]) -> str:
    return (
        f"{r['sandbox']}: {r['submissions']} submissions x {r['executions_each_way'] // r['submissions']} rounds,"
        " interleaved: execute per submission "
        f"{r['execute_with_probes_s']:.3f} s with probes, {r['execute_without_probes_s']:.3f} s without:"
        f" {r['difference_s']:+.3f} s ({r['difference_pct']:+.1f}%); "
        f"the probes' own time {r['probe_self_time_s']:.3f} s ({r['probe_self_time_pct']:.1f}%),"
        f" {r['probes_per_submission']} probes per submission ({r['probe_ms']} ms each), {r['findings']} findings"
    )


def measure_all(
    items: list[Any],
    measure: Any,
    show: Any,
    key: str,
    json_path: Path | None,
    root: Path,
    keep: bool,
    code: Path = REPO,
) -> list[dict[str, Any]]:
    """measure(item) for each item, printing show(result) as each comes and rewriting the JSON
    (what was measured survives a later failure); the courses built under `root` go at the end
    unless `keep`."""
    done: list[dict[str, Any]] = []
    try:
        for item in items:
            done.append(measure(item))
            print(show(done[-1]), flush=True)
            if json_path:
                json_path.write_text(
                    json.dumps({"machine": machine(), "code": code_version(code), key: done}, indent=1)
                )
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return done


def code_version(code: Path) -> str:
    """Which gradeflow was timed: the checkout's commit, `+changes` when it has uncommitted ones."""
    head = subprocess.run(
        ["git", "-C", str(code), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(code), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    ).stdout.strip()
    return f"{code} {head or '(not a git checkout)'}{' +changes' if dirty else ''}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="60", help="comma-separated submission counts (default 60)")
    p.add_argument(
        "--jobs",
        default="2",
        help="comma-separated job counts for gradeflow (default 2); speed-up is against the first",
    )
    p.add_argument(
        "--sandbox", default="bubblewrap", help="comma-separated sandboxes for gradeflow (default bubblewrap)"
    )
    p.add_argument(
        "--tools",
        default="nbgrader,gradeflow",
        help="which tools to run (default both; gradeflow alone for a quick look)",
    )
    p.add_argument("--nbconvert-sample", type=int, default=6, help="notebooks to time with bare nbconvert (0: skip)")
    p.add_argument(
        "--code",
        type=Path,
        default=REPO,
        help="the gradeflow checkout to time (default: this one), e.g. another branch's, for before/after",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    p.add_argument("--keep", type=Path, default=None, help="build courses here and keep them")
    p.add_argument(
        "--integrity", type=int, default=0, metavar="N", help="only measure the integrity probes' cost on N submissions"
    )
    p.add_argument(
        "--feedback-pairs",
        type=int,
        default=0,
        help="instead: time gradeflow without and with --feedback, this many times each, interleaved,"
        " then nbgrader generate_feedback",
    )
    a = p.parse_args(argv)
    root = a.keep or Path(tempfile.mkdtemp(prefix="gradeflow-bench-"))
    tools, sandboxes = a.tools.split(","), a.sandbox.split(",")
    sizes, jobs = [int(x) for x in a.sizes.split(",")], [int(x) for x in a.jobs.split(",")]
    keep = a.keep is not None
    if a.integrity:
        measure_all(
            sandboxes,
            lambda sandbox: integrity_cost(a.integrity, sandbox, root),
            integrity_line,
            "integrity",
            a.json,
            root,
            keep,
        )
        return 0
    if a.feedback_pairs:
        measure_all(
            sizes,
            lambda n: bench_feedback(n, jobs[0], sandboxes[0], root, a.feedback_pairs),
            feedback_lines,
            "feedback",
            a.json,
            root,
            keep,
        )
        return 0
    rows = measure_all(
        sizes,
        lambda n: bench_size(n, jobs, sandboxes, tools, root, a.nbconvert_sample, a.code.resolve()),
        lambda row: table([row]),
        "rows",
        a.json,
        root,
        keep,
        a.code.resolve(),
    )
    print()
    m = machine()
    print(
        f"machine: {m['cpus']} CPUs, {m['memory_gb']} GB; python {m['python']}; {m['date']};"
        f" gradeflow {code_version(a.code.resolve())}"
    )
    print(table(rows))
    print()
    print("where gradeflow's time went (from the run's own records):")
    print(profile_lines(rows))
    differ = [r["tool"] for row in rows for r in row["runs"] if r.get("scores", {}).get("different_count")]
    if differ:
        print(f"grades differ from nbgrader's ({', '.join(differ)}): the times above do not count", file=sys.stderr)
        return 1
    return 0


def machine() -> dict[str, Any]:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(mem),
        "python": sys.version.split()[0],
        "date": dt.date.today().isoformat(),
    }


if __name__ == "__main__":
    raise SystemExit(main())
