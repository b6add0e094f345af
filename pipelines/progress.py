"""Showing a grading run's progress: a live bar on a terminal, plain lines elsewhere, JSON for programs.

`grade()` reports `pipelines.local.Event`s to a callback; this module turns them into what a
teacher (or a program) sees. `progress_printer(mode)` picks the printer by name, so the CLI,
the Jupyter extension and tests ask for "bar", "lines", "json" or "quiet" and never build one
themselves. All output goes to stderr: stdout is kept for the summary or results.json.

The JSON lines (one object per event, `{"event": "progress", ...}`) are what the Jupyter
extension reads from `gradeflow grade --json` to show its own progress bar.
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any, Callable

__all__ = [
    "ProgressCounter",
    "LinePrinter",
    "JsonPrinter",
    "BarPrinter",
    "QuietPrinter",
    "PRINTERS",
    "progress_printer",
    "choose_mode",
]

STATUSES = ("ok", "repaired", "missing", "skipped", "failed", "ungraded")


class ProgressCounter:
    """The bookkeeping every printer shares: how many submissions are done, with which status, and the ETA."""

    def __init__(self) -> None:
        self.total = 0
        self.counts = {s: 0 for s in STATUSES}
        self.step = ""
        self.started: float | None = None  # when execute started

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def eta_seconds(self) -> float | None:
        """Seconds left for execute, from the mean pace so far (parallel jobs included)."""
        if self.started is None or not self.done or not self.total:
            return None
        elapsed = time.monotonic() - self.started
        return round(elapsed / self.done * max(0, self.total - self.done), 1)

    def update(self, e: Any) -> None:
        self.step = e.step
        if e.total:  # collect's `done` knows it first; merge's events carry none
            self.total = e.total
        if e.step == "execute" and e.kind == "start":
            self.started = time.monotonic()
        elif e.kind == "submission":
            self.counts[e.status] = self.counts.get(e.status, 0) + 1

    def describe(self) -> str:
        """`ok 3 · failed 1 · skipped 0`: graded counts first, then the two a teacher must look at."""
        graded = self.counts["ok"] + self.counts["repaired"] + self.counts["missing"]
        text = f"graded {graded} · failed {self.counts['failed']} · skipped {self.counts['skipped']}"
        return text + (f" · not graded {self.counts['ungraded']}" if self.counts.get("ungraded") else "")


class _Printer:
    """Base printer: keeps the counts; subclasses only say how an event is shown."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.counter = ProgressCounter()

    def __call__(self, e: Any) -> None:
        self.counter.update(e)
        self.show(e)

    def show(self, e: Any) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        """Stop any live display (a run that raised never sends execute's `done`)."""


class QuietPrinter(_Printer):
    """Nothing at all (`--quiet`)."""

    def show(self, e: Any) -> None:
        pass


class LinePrinter(_Printer):
    """One plain line per finished step and per finished submission: for logs and pipes."""

    def show(self, e: Any) -> None:
        c = self.counter
        if e.kind == "submission":
            eta = c.eta_seconds()
            eta_text = f", ETA {_clock(eta)}" if eta and c.done < c.total else ""
            print(
                f"[execute] {c.done}/{c.total} {e.student}: {e.status} ({e.seconds:.1f} s); {c.describe()}{eta_text}",
                file=self.stream,
                flush=True,
            )
        elif e.kind == "done":
            extra = f": {e.total} submission(s) to grade" if e.step == "collect" else ""
            print(f"[{e.step}] done{extra}", file=self.stream, flush=True)


class JsonPrinter(_Printer):
    """One JSON object per event, one per line: for programs (the Jupyter extension reads these)."""

    def show(self, e: Any) -> None:
        c = self.counter
        doc = {
            "event": "progress",
            "step": e.step,
            "kind": e.kind,
            "total": c.total,
            "done": c.done,
            "counts": dict(c.counts),
            "eta_seconds": c.eta_seconds(),
        }
        if e.kind == "submission":
            doc.update(student=e.student, status=e.status, seconds=round(e.seconds, 3))
        print(json.dumps(doc), file=self.stream, flush=True)


class BarPrinter(LinePrinter):
    """A live rich bar while execute runs (done/total, graded/failed/skipped, elapsed, ETA); plain lines around it."""

    def __init__(self, stream: IO[str] | None = None, console: Any = None) -> None:
        super().__init__(stream)
        self.console = console
        self.bar: Any = None
        self.task: Any = None

    def show(self, e: Any) -> None:
        if e.step == "execute" and e.kind == "start" and e.total:
            self._start(e.total)
            return
        if e.kind == "submission" and self.bar is not None:
            self.bar.update(self.task, advance=1, description=self.counter.describe())
            if e.status != "ok":  # the ones a teacher will want to look at, above the bar
                from rich.text import Text

                self.bar.console.print(
                    Text(f"  {e.student}: {e.status} ({e.seconds:.1f} s)", style=_STYLE.get(e.status, ""))
                )
            return
        if e.step == "execute" and e.kind == "done":
            self.close()
        super().show(e)

    def _start(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        console = self.console or Console(file=self.stream)
        self.bar = Progress(
            TextColumn("[bold]execute"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.bar.start()
        self.task = self.bar.add_task(self.counter.describe(), total=total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


_STYLE = {
    "ok": "green",
    "repaired": "green",
    "missing": "yellow",
    "skipped": "yellow",
    "failed": "red",
    "ungraded": "red",
}


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}:{s:02d}"


PRINTERS: dict[str, Callable[..., _Printer]] = {
    "bar": BarPrinter,
    "lines": LinePrinter,
    "json": JsonPrinter,
    "quiet": QuietPrinter,
}


def choose_mode(json_output: bool = False, quiet: bool = False, stream: IO[str] | None = None) -> str:
    """The printer for a CLI run: JSON lines with --json, nothing with --quiet, a bar only on a terminal."""
    if quiet:
        return "quiet"
    if json_output:
        return "json"
    stream = stream or sys.stderr
    return "bar" if getattr(stream, "isatty", lambda: False)() else "lines"


def progress_printer(mode: str, stream: IO[str] | None = None) -> _Printer:
    """The printer registered as `mode`; an unknown mode lists the known ones."""
    try:
        return PRINTERS[mode](stream)
    except KeyError:
        raise ValueError(f"unknown progress mode {mode!r}; choose one of: {', '.join(PRINTERS)}") from None
