"""The code passes ruff with the configuration in pyproject.toml ([tool.ruff]).

Scenario: CI runs the whole suite, so a change that adds an unused import, an import out of
order, a blind `except Exception` without its reason, or a line past the ratchet in
[tool.ruff.lint.pycodestyle] fails here, with ruff's own report as the message.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing_in_steps_pipelines_tests_and_bench() -> None:
    pytest.importorskip("ruff", reason="ruff is in the dev extra: pip install -c constraints.txt -e '.[dev]'")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--no-cache",
            "--output-format",
            "concise",
            "steps",
            "pipelines",
            "tests",
            "bench",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_code_is_as_ruff_format_writes_it() -> None:
    """One layout for every file, so a diff shows a change of logic, not of style: run
    `ruff format steps pipelines tests bench` before committing."""
    pytest.importorskip("ruff", reason="ruff is in the dev extra: pip install -c constraints.txt -e '.[dev]'")
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "steps", "pipelines", "tests", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
