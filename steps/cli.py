"""What every step CLI shares: exit codes and how errors are shown.

Each `steps/<name>.py` parses its own arguments and makes one call through `run_step`, so
the same function runs on a laptop, in the local runner and in an Argo pod.
"""
from __future__ import annotations

import logging
import sys
import traceback
from typing import Any, Callable

from .contract import EXIT_INFRA, EXIT_OK, EXIT_USAGE, Step
from .errors import TeacherError

__all__ = ["run_step", "setup_logging"]


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)


def run_step(step: Step, call: Callable[[], Any]) -> int:
    """Run a step; map a teacher's problem to EXIT_USAGE and our own crash to EXIT_INFRA."""
    setup_logging()
    log = logging.getLogger(f"gradeflow.{step.name}")
    try:
        call()
    except TeacherError as e:
        log.error("%s", e)
        return EXIT_USAGE
    except Exception:  # noqa: BLE001 - the traceback is the evidence; the exit code says "retry may help"
        log.error("%s failed:\n%s", step.name, traceback.format_exc())
        return EXIT_INFRA
    return EXIT_OK
