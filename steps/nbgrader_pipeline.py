"""nbgrader autograde's preprocessor lists, read from the course's config and cut where student code runs.

`nbgrader autograde` runs each notebook through `c.Autograde.sanitize_preprocessors`, then
`c.Autograde.autograde_preprocessors` (nbgrader/converters/autograde.py), and a course may
configure both. gradeflow reads the same two lists, from the configuration collect exported
into the snapshot, and cuts them at its trust boundary:

* restore, on the teacher's side before any student code ran: the sanitize list, then what
  the autograde list puts before `Execute`;
* execute, in the sandbox: stands in for nbgrader's `Execute`;
* score, on the teacher's side after: what comes after `Execute`, against a scratch gradebook;
* merge: those of score's that write a gradebook (SaveAutoGrades, AssignLatePenalties), run
  again against the course's real one.

None of them runs student code; each is built with the course's configuration.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping

from .errors import TeacherError

__all__ = [
    "autograde_lists",
    "restore_preprocessors",
    "score_preprocessors",
    "merge_preprocessors",
    "instances",
    "run_preprocessors",
]


def _classes(config: Mapping[str, Any], trait: str) -> list[type]:
    from nbgrader.converters.autograde import Autograde
    from traitlets.utils.importstring import import_item

    configured = (config.get("Autograde") or {}).get(trait)
    if configured is None:
        return list(Autograde.class_traits()[trait].default())
    out = []
    for item in configured:
        if isinstance(item, type):
            out.append(item)
            continue
        try:
            out.append(import_item(str(item)))
        except (ImportError, AttributeError, ValueError) as e:
            raise TeacherError(
                f"c.Autograde.{trait} names {item!r}, which gradeflow cannot import ({e})",
                "give the full module path of a preprocessor installed in gradeflow's Python"
                " (and in the grader image, on Argo)",
            ) from None
    return out


def autograde_lists(config: Mapping[str, Any]) -> tuple[list[type], list[type]]:
    """The course's (sanitize_preprocessors, autograde_preprocessors), nbgrader's defaults where unset."""
    return _classes(config, "sanitize_preprocessors"), _classes(config, "autograde_preprocessors")


def _split_at_execute(autograde: list[type]) -> tuple[list[type], list[type]]:
    from nbgrader.preprocessors import Execute

    at = next((i for i, cls in enumerate(autograde) if issubclass(cls, Execute)), -1)
    return autograde[: max(at, 0)], autograde[at + 1 :]


def instances(classes: list[type], config: Mapping[str, Any]) -> list[Any]:
    from traitlets.config import Config

    from .metadata_schema import check_schema_once

    check_schema_once()  # CheckCellMetadata's schema, checked once per process, not per cell
    cfg = config if isinstance(config, Config) else Config(dict(config))
    return [cls(config=cfg) for cls in classes]


def run_preprocessors(
    preprocessors: Iterable[Any], nb: Any, resources: dict[str, Any], log: logging.Logger | None = None
) -> tuple[Any, dict[str, Any]]:
    """Run `preprocessors` over `nb` in order, as nbgrader's converters do, and return (nb, resources).

    The lists above keep disabled preprocessors (a course may turn one off with `enabled =
    False`); calling each one, as nbconvert's Exporter does, is what skips them. `log`, when
    given, replaces each preprocessor's logger (restore captures the repairs they report)."""
    for pp in preprocessors:
        if log is not None:
            pp.log = log
        nb, resources = pp(nb, resources)  # Preprocessor.__call__: preprocess() only when enabled
    return nb, resources


def restore_preprocessors(config: Mapping[str, Any]) -> list[Any]:
    """Sanitize, then the autograde list up to `Execute`: what runs before student code."""
    sanitize, autograde = autograde_lists(config)
    return instances(sanitize + _split_at_execute(autograde)[0], config)


def score_preprocessors(config: Mapping[str, Any]) -> list[Any]:
    """The autograde list after `Execute`: grading the executed notebook."""
    return instances(_split_at_execute(autograde_lists(config)[1])[1], config)


def merge_preprocessors(config: Mapping[str, Any]) -> list[Any]:
    """Score's preprocessors that write a gradebook, for the course's real one."""
    from nbgrader.preprocessors import AssignLatePenalties, SaveAutoGrades

    after = _split_at_execute(autograde_lists(config)[1])[1]
    return instances([cls for cls in after if issubclass(cls, (SaveAutoGrades, AssignLatePenalties))], config)
