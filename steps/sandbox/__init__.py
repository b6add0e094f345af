"""Sandbox backends, registered by name, one module per `--sandbox` name (bubblewrap.py,
podman.py, pod.py, none.py, argo_pod.py for argo-pod). Callers ask `get_sandbox(name, **options)`
once per run and pass the sandbox it returns down; nothing else chooses a backend. An unknown
name lists the known ones, an option the backend does not take says which backends take it."""

from __future__ import annotations

import logging
from typing import Any, Mapping

from ..errors import SandboxUnavailable, TeacherError
from .base import KernelLauncher, KernelSandbox, Limits, Sandbox
from .bubblewrap import BubblewrapSandbox
from .none import NoSandbox
from .pod import PodSandbox
from .zygote import zygote_enabled

__all__ = [
    "Limits",
    "Sandbox",
    "KernelSandbox",
    "KernelLauncher",
    "SANDBOXES",
    "register",
    "get_sandbox",
    "check_available",
    "options_from_env",
    "prestart",
    "DEFAULT_SANDBOX",
]

SANDBOXES: dict[str, type[Sandbox]] = {}
DEFAULT_SANDBOX = "bubblewrap"
log = logging.getLogger("gradeflow.execute")


def register(cls: type[Sandbox]) -> type[Sandbox]:
    SANDBOXES[cls.name] = cls
    return cls


for _cls in (BubblewrapSandbox, PodSandbox, NoSandbox):
    register(_cls)
try:  # the podman backend is optional: it needs the grader image
    from .argo_pod import ArgoPodSandbox
    from .podman import PodmanSandbox

    register(PodmanSandbox)
    register(ArgoPodSandbox)  # the Argo execute pod emulated with podman: tests the pod sandbox off-cluster
except ImportError:  # pragma: no cover
    pass


def get_sandbox(name: str, check: bool = True, **options: Any) -> Sandbox:
    """The sandbox registered as `name`, with `options` (its dataclass fields, e.g. `image=`
    for podman); with check, refuse one that cannot run here. Checking runs a probe (tens of ms
    for podman): resolve a sandbox once per run and pass it down, not its name."""
    try:
        cls = SANDBOXES[name]
    except KeyError:
        raise TeacherError(f"unknown sandbox {name!r}", f"choose one of: {', '.join(sorted(SANDBOXES))}") from None
    for option in options:
        if option not in cls.options():
            takers = sorted(n for n, c in SANDBOXES.items() if option in c.options())
            raise TeacherError(
                f"the {name} sandbox takes no {option!r} option",
                f"{option!r} is for the {', '.join(takers)} sandbox(es)"
                if takers
                else f"it takes: {', '.join(cls.options())}",
            )
    sandbox = cls(**options)
    if check:
        check_available(sandbox)
    return sandbox


def check_available(sandbox: Sandbox) -> None:
    """Refuse a sandbox that cannot run here (its `unavailable` probe), saying why."""
    why = sandbox.unavailable()
    if why:
        raise SandboxUnavailable(
            f"the {sandbox.name} sandbox is not available: {why}",
            "gradeflow never runs student code unsandboxed unless you pass --unsafe-no-sandbox",
        )


def options_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """The sandbox options a user sets in the environment (GRADEFLOW_ZYGOTE); read by the entry
    points (`gradeflow grade`, `python -m steps.execute`), never deeper."""
    return {"zygote": zygote_enabled(environ)}


def prestart(sandbox: Sandbox | str, limits: Limits, slot: int = 0) -> None:
    """Start this process's next sandbox for `slot` now, empty, so that its submission does not
    wait for it (`KernelSandbox.prestart`; the local runner's warm slot). One that cannot start
    is logged and left out: the next submission then starts its own, and is not graded if that
    fails too. `sandbox`: the run's (a name: its defaults)."""
    if isinstance(sandbox, str):
        sandbox = get_sandbox(sandbox, check=False)
    if not isinstance(sandbox, KernelSandbox):
        return  # whole-step sandboxes start per submission
    try:
        sandbox.prestart(limits, slot)
    except Exception as e:  # noqa: BLE001 - the next submission starts a sandbox of its own
        log.warning(
            "could not start the next %s sandbox ahead of time (%s: %s); the next submission starts its own",
            sandbox.name,
            type(e).__name__,
            e,
        )
