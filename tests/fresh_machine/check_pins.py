#!/usr/bin/env python3
"""Do constraints.txt's pins resolve on every Python that pyproject.toml claims?

A pin that needs a newer Python than a supported distribution ships (soupsieve 4.1.2 needs
3.11.5; Debian 12 has 3.11.2) breaks `make` there with "ResolutionImpossible". For each given
interpreter this makes a throw-away venv and asks that Python's own pip to resolve
`-c constraints.txt -e .[dev]` (a dry run: nothing is installed). It fails when pip cannot
resolve, when a package of the closure has no pin for that Python (the install would float),
or when a package would be built from source (a stock machine may have no compiler).

    tests/fresh_machine/check_pins.py [PYTHON ...]     # default: every python3.N on PATH and in pyenv

Needs the package index (network). Run before a release and after editing the pins; it is not
part of `make test` (about two minutes per Python, mostly downloads).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def interpreters() -> list[str]:
    """python3.N on PATH, plus every pyenv version >= 3.10 (one per minor: the oldest patch)."""
    found: dict[str, str] = {}
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for exe in sorted(
        pyenv.glob("3.*/bin/python3"),
        key=lambda p: [int(x) for x in p.parts[-3].split(".") if x.isdigit()],
        reverse=True,
    ):
        found[".".join(exe.parts[-3].split(".")[:2])] = str(exe)
    for minor in range(10, 20):
        for d in os.get_exec_path():
            exe = Path(d) / f"python3.{minor}"
            if exe.is_file() and "shims" not in d:
                found.setdefault(f"3.{minor}", str(exe))
                break
    return [found[k] for k in sorted(found, key=lambda v: int(v.split(".")[1])) if int(k.split(".")[1]) >= 10]


def pinned(python: str) -> dict[str, str]:
    """constraints.txt's pins whose markers hold for `python`: normalized name -> version."""
    code = (
        "import json, re, sys\n"
        "from pip._vendor.packaging.requirements import Requirement\n"
        "pins = {}\n"
        "for line in open(sys.argv[1]):\n"
        "    line = line.split('#')[0].strip()\n"
        "    if not line: continue\n"
        "    r = Requirement(line)\n"
        "    if r.marker is None or r.marker.evaluate():\n"
        "        pins[re.sub(r'[-_.]+', '-', r.name).lower()] = str(r.specifier).lstrip('=')\n"
        "print(json.dumps(pins))\n"
    )
    return json.loads(
        subprocess.run(
            [python, "-c", code, str(REPO / "constraints.txt")], check=True, capture_output=True, text=True
        ).stdout
    )


def check(python: str) -> list[str]:
    """Problems with the pins on `python` (empty: they resolve, all pinned, all wheels)."""
    with tempfile.TemporaryDirectory(prefix="gradeflow-pins-") as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        py = str(venv / "bin" / "python")
        report = Path(tmp) / "report.json"
        r = subprocess.run(
            [
                py,
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--dry-run",
                "--ignore-installed",
                "--report",
                str(report),
                "-c",
                str(REPO / "constraints.txt"),
                "-e",
                f"{REPO}[dev]",
            ],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            return [f"pip cannot resolve the pins:\n{r.stdout[-3000:]}{r.stderr[-3000:]}"]
        pins = pinned(py)
        problems = []
        for item in json.loads(report.read_text())["install"]:
            name = item["metadata"]["name"]
            key = name.lower().replace("_", "-").replace(".", "-")
            url = item["download_info"]["url"]
            if url.startswith("file://") and Path(url[7:]) == REPO:
                continue
            if key not in pins:
                problems.append(
                    f"{name} {item['metadata']['version']} is not pinned for this Python (add it to constraints.txt)"
                )
            if not url.endswith(".whl"):
                problems.append(
                    f"{name} {item['metadata']['version']} has no wheel here and would be built from source ({url})"
                )
        return problems


def main(argv: list[str]) -> int:
    pythons = argv or interpreters()
    if not pythons:
        print("check_pins: no python3.N found; pass interpreters as arguments", file=sys.stderr)
        return 2
    failed = 0
    for python in pythons:
        version = subprocess.run(
            [python, "-c", "import platform; print(platform.python_version())"], capture_output=True, text=True
        ).stdout.strip()
        t0 = time.monotonic()
        problems = check(python)
        status = "OK" if not problems else "FAIL"
        print(f"{status}  Python {version} ({python}): {time.monotonic() - t0:.0f}s", flush=True)
        for p in problems:
            print(f"      {p}")
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
