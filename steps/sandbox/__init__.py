"""Sandbox backends, registered by name. Callers ask `get_sandbox(name)`; nothing else
chooses a backend. An unknown name lists the known ones."""

from __future__ import annotations

import logging

from ..errors import SandboxUnavailable, TeacherError
from .base import KernelLauncher, KernelSandbox, Limits, Sandbox
from .bubblewrap import BubblewrapSandbox
from .local import NoSandbox, PodSandbox

__all__ = [
    "Limits",
    "Sandbox",
    "KernelSandbox",
    "KernelLauncher",
    "SANDBOXES",
    "register",
    "get_sandbox",
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


def get_sandbox(name: str, check: bool = True) -> Sandbox:
    """The sandbox registered as `name`; with check, refuse one that cannot run here."""
    try:
        sandbox = SANDBOXES[name]()
    except KeyError:
        raise TeacherError(f"unknown sandbox {name!r}", f"choose one of: {', '.join(sorted(SANDBOXES))}") from None
    why = sandbox.unavailable() if check else None
    if why:
        raise SandboxUnavailable(
            f"the {name} sandbox is not available: {why}",
            "gradeflow never runs student code unsandboxed unless you pass --unsafe-no-sandbox",
        )
    return sandbox


def prestart(name: str, limits: Limits, slot: int = 0) -> None:
    """Start this process's next sandbox for `slot` now, empty, so that its submission does not
    wait for it (`KernelSandbox.prestart`; the local runner's warm slot). One that cannot start
    is logged and left out: the next submission then starts its own, and is not graded if that
    fails too."""
    sandbox = get_sandbox(name, check=False)
    if not isinstance(sandbox, KernelSandbox):
        return  # whole-step sandboxes start per submission
    try:
        sandbox.prestart(limits, slot)
    except Exception as e:  # noqa: BLE001 - the next submission starts a sandbox of its own
        log.warning(
            "could not start the next %s sandbox ahead of time (%s: %s); the next submission starts its own",
            name,
            type(e).__name__,
            e,
        )
