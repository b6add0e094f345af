"""Benchmark: sandboxed `gradeflow grade --jobs 2` against `nbgrader autograde` on one course.

For each N it builds the example course with N submissions (cheap variants: no infinite
loops), makes two fresh copies, and times `nbgrader autograde ps1` and `gradeflow grade ps1`
on them in the same run. It reports wall time, per-submission overhead (wall time not spent
in the notebooks' own cells, from nbclient's per-cell timings in the output notebooks), peak
memory of the whole process tree (a memory cgroup per command when run as root, else the
largest RSS) and the ratio; plus the per-notebook overhead of a bare
`jupyter nbconvert --execute` of the same notebooks, the yardstick for overhead.

    python bench/bench.py                    # N = 60
    python bench/bench.py --sizes 10,30,100  # how cost grows
    python bench/bench.py --sandbox podman --json bench.json
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
import time
from pathlib import Path
from typing import Any

import nbformat

REPO = Path(__file__).resolve().parents[1]
CGROUP_V1 = Path("/sys/fs/cgroup/memory")


def _make_course_module():
    spec = importlib.util.spec_from_file_location("make_course", REPO / "examples" / "make_course.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def measured(cmd: list[str], cwd: Path, name: str) -> dict[str, Any]:
    """Run cmd; return wall seconds and the peak memory of its whole process tree."""
    cg = CGROUP_V1 / f"gradeflow-bench-{os.getpid()}-{name}"
    use_cg = os.geteuid() == 0 and CGROUP_V1.is_dir()
    if use_cg:
        cg.mkdir(exist_ok=True)
        cmd = ["sh", "-c", f'echo $$ > {cg}/cgroup.procs && exec "$@"', "sh", *cmd]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if use_cg:
        peak = int((cg / "memory.max_usage_in_bytes").read_text()) / 2**20
        cg.rmdir()
        how = "cgroup (whole tree)"
    else:
        peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
        how = "largest child RSS"
    if proc.returncode not in (0, 1):  # nbgrader exits 1 when some submission failed
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return {"wall_s": round(wall, 2), "peak_mb": round(peak, 1), "peak_how": how}


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


def bench_size(n: int, jobs: int, sandbox: str, root: Path, nbconvert_sample: int) -> dict[str, Any]:
    mc = _make_course_module()
    base = mc.make_course(root / f"n{n}" / "base", students=n, seed=n)
    nbg, gf = root / f"n{n}" / "nbgrader", root / f"n{n}" / "gradeflow"
    shutil.copytree(base, nbg)
    shutil.copytree(base, gf)
    out: dict[str, Any] = {"submissions": n, "jobs": jobs, "sandbox": sandbox}

    r = measured([sys.executable, "-m", "nbgrader", "autograde", "ps1", "--force"], nbg, f"nbgrader-{n}")
    nbs = sorted((nbg / "autograded").glob("*/ps1/*.ipynb"))
    r["cell_s"] = round(cell_seconds(nbs), 2)
    r["overhead_per_submission_s"] = round((r["wall_s"] - r["cell_s"]) / n, 3)
    out["nbgrader"] = r

    r = measured([sys.executable, "-m", "pipelines.cli", "grade", str(gf), "ps1", "--jobs", str(jobs), "--sandbox", sandbox, "--json"], REPO, f"gradeflow-{n}")
    run_dirs = sorted((gf / "gradeflow_runs").glob("ps1-*"))
    nbs = sorted(run_dirs[-1].glob("executed/*/*.ipynb"))
    r["cell_s"] = round(cell_seconds(nbs), 2)
    # with J jobs, J notebooks run at once: overhead is the slot-time not spent in cells
    r["overhead_per_submission_s"] = round((r["wall_s"] * jobs - r["cell_s"]) / n, 3)
    out["gradeflow"] = r
    out["ratio_wall"] = round(out["gradeflow"]["wall_s"] / out["nbgrader"]["wall_s"], 3)

    if nbconvert_sample:
        sample = sorted((gf / "gradeflow_runs").glob("ps1-*/restored/*/work/*.ipynb"))[:nbconvert_sample]
        walls, cells = 0.0, 0.0
        for nb in sample:
            with tempfile.TemporaryDirectory() as tmp:
                work = Path(tmp) / "work"
                shutil.copytree(nb.parent, work)
                t0 = time.monotonic()
                subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--allow-errors", "--output", "out.ipynb", nb.name], cwd=work, capture_output=True)
                walls += time.monotonic() - t0
                cells += cell_seconds([work / "out.ipynb"]) if (work / "out.ipynb").exists() else 0.0
        per_nb = (walls - cells) / max(1, len(sample))
        out["nbconvert_overhead_per_notebook_s"] = round(per_nb, 3)
        notebooks_per_submission = 2
        out["gradeflow_overhead_vs_nbconvert"] = round(out["gradeflow"]["overhead_per_submission_s"] / (per_nb * notebooks_per_submission), 3)
    return out


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'N':>4} {'tool':10} {'wall s':>8} {'cells s':>8} {'ovh/sub s':>10} {'peak MiB':>9}  ratio",
    ]
    for r in rows:
        for tool in ("nbgrader", "gradeflow"):
            t = r[tool]
            ratio = f"{r['ratio_wall']:.2f}x" if tool == "gradeflow" else ""
            lines.append(f"{r['submissions']:>4} {tool:10} {t['wall_s']:>8.1f} {t['cell_s']:>8.1f} {t['overhead_per_submission_s']:>10.3f} {t['peak_mb']:>9.0f}  {ratio}")
        if "nbconvert_overhead_per_notebook_s" in r:
            lines.append(f"{'':>4} nbconvert --execute overhead per notebook: {r['nbconvert_overhead_per_notebook_s']:.3f} s; gradeflow per-submission overhead / (2 x that) = {r['gradeflow_overhead_vs_nbconvert']:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="60", help="comma-separated submission counts (default 60)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--sandbox", default="bubblewrap")
    p.add_argument("--nbconvert-sample", type=int, default=6, help="notebooks to time with bare nbconvert (0: skip)")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    p.add_argument("--keep", type=Path, default=None, help="build courses here and keep them")
    a = p.parse_args(argv)
    root = a.keep or Path(tempfile.mkdtemp(prefix="gradeflow-bench-"))
    rows = []
    try:
        for n in [int(x) for x in a.sizes.split(",")]:
            rows.append(bench_size(n, a.jobs, a.sandbox, root, a.nbconvert_sample))
            print(table(rows[-1:]), flush=True)
    finally:
        if a.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print()
    print(f"machine: {os.cpu_count()} CPUs; python {sys.version.split()[0]}")
    print(table(rows))
    if a.json:
        a.json.write_text(json.dumps({"machine": {"cpus": os.cpu_count()}, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
