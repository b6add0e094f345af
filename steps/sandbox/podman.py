"""The podman sandbox: the kernel runs in the grader image, under the Argo pod's restrictions.

Each submission's kernels run in one container of `images/grader` (build it with
`images/grader/build.sh`), forked by the submission's zygote, which is the container's PID 1
(a kernel that cannot be forked gets a container of its own): uid 1000, read-only root
filesystem, tmpfs /tmp, the work dir bound at /work, no network, all capabilities dropped,
no privilege escalation, memory, pids, open-files and CPU-time limits. papermill and the
notebook stay in this process and reach the kernel over Unix sockets in a bind-mounted
directory, exactly as with bubblewrap, so student code cannot rewrite the notebook being
recorded. Rootful podman; on this kind of host it needs `--runtime runc` and explicit ulimits
(see images/README.md). The image is the sandbox's `image` option (`--sandbox-image`).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import KernelLauncher, KernelSandbox, Limits, minimal_env
from .leftovers import OWNER_LABEL

__all__ = ["PodmanSandbox", "PodmanLauncher", "DEFAULT_IMAGE", "CONTAINER_UID"]

DEFAULT_IMAGE = "localhost/gradeflow-grader:dev"
CONTAINER_UID = 1000  # the image's non-root user
PODMAN = ["podman", "--runtime", "runc"]


class PodmanLauncher(KernelLauncher):
    kernel_uid = CONTAINER_UID

    def __init__(self, work: Path, scratch: Path, limits: Limits, slot: int = 0, image: str = DEFAULT_IMAGE) -> None:
        super().__init__(work, scratch, limits, slot)
        self.image = image
        self.containers: list[str] = []

    def kernel_env(self) -> dict[str, str]:
        """The environment of the podman client, not of the container (see `_container_env`)."""
        keep = {k: v for k, v in os.environ.items() if k.startswith(("CONTAINERS_", "XDG_"))}
        return {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            **keep,
        }

    @staticmethod
    def _container_env() -> dict[str, str]:
        env = minimal_env("/tmp", {"USER": "student"})
        env.pop("PATH")  # the image's own PATH finds the image's Python
        return env

    def kernel_command(self, argv: list[str], as_pid_1: bool = False) -> list[str]:
        lim = self.limits
        name = f"gradeflow-{os.getpid()}-{self.slot}-{len(self.containers)}"
        self.containers.append(name)
        ipc = str(self.ipc)
        # runc refuses an nproc limit above what the host allows it (65536 fails here, 4096 works)
        hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
        nproc = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
        cmd = [
            *PODMAN,
            "run",
            "--rm",
            "--name",
            name,
            # the zygote (PID 1) gets the grader's pipe as stdin (its lifeline, see zygote_main);
            # a kernel started directly gets an init to reap what it leaves
            *(["--interactive"] if as_pid_1 else ["--init"]),
            "--hostname",
            "sandbox",
            "--label",
            f"{OWNER_LABEL}={os.getpid()}",  # a killed run's containers are removed by the next (leftovers.py)
            "--network",
            "none",
            "--read-only",
            "--user",
            f"{CONTAINER_UID}:{CONTAINER_UID}",
            "--log-driver",
            "none",  # no copy of the kernel's stdout under /var/lib/containers (no size limit there)
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            f"--memory={lim.memory_mb}m",
            f"--memory-swap={lim.memory_mb}m",
            f"--pids-limit={lim.pids}",
            f"--ulimit=nofile={lim.nofile}:{lim.nofile}",
            f"--ulimit=cpu={lim.cpu_time}:{lim.cpu_time}",
            f"--ulimit=nproc={nproc}:{nproc}",  # uid 1000 is shared by every container: --pids-limit bounds each one
            "--tmpfs",
            f"/tmp:rw,size={lim.disk_mb}m,mode=1777",
            "-v",
            f"{self.work}:/work:rw",
            "-w",
            "/work",
            "-v",
            f"{ipc}:{ipc}:rw",
        ]
        for key, value in self._container_env().items():
            cmd += ["--env", f"{key}={value}"]
        # The kernel's raw stdout reaches execute.log through this podman client: RLIMIT_FSIZE on the
        # client bounds that file (past it the client exits and the kernel is reported dead), and the
        # container inherits it as the per-file limit bubblewrap also sets.
        return ["prlimit", f"--fsize={lim.disk_mb * 1024 * 1024}", "--", *cmd, self.image, "python", *argv[1:]]

    def kill_contained(self) -> None:
        if self.containers:
            subprocess.run(
                [*PODMAN, "rm", "--force", "--ignore", "--time", "0", *self.containers],
                capture_output=True,
                check=False,
            )

    def teardown(self) -> dict[str, Any]:
        """Remove the containers, then count what is left of this slot's (the evidence)."""
        self.kill_contained()
        left = subprocess.run(
            [*PODMAN, "ps", "--all", "--quiet", "--filter", f"name=gradeflow-{os.getpid()}-{self.slot}-"],
            capture_output=True,
            text=True,
        ).stdout.split()
        return {"containers": len(self.containers), "leftover_containers": len(left)}


@dataclass(kw_only=True)
class PodmanSandbox(KernelSandbox):
    name = "podman"
    guarantee = (
        "kernel only, in the grader image: uid 1000, read-only root, tmpfs /tmp, no network, no capabilities, "
        "no privilege escalation, memory/pids/CPU limits; the notebook and papermill stay outside"
    )

    image: str = DEFAULT_IMAGE  # the grader image the kernel runs in (gradeflow grade --sandbox-image)

    def make_launcher(self, work: Path, scratch: Path, limits: Limits, slot: int) -> KernelLauncher:
        return PodmanLauncher(work, scratch, limits, slot, self.image)

    def unavailable(self) -> str | None:
        missing = [t for t in ("podman", "runc", "prlimit") if not shutil.which(t)]
        if missing:
            return f"{', '.join(missing)} not found: install them with `apt-get install podman runc`"
        if os.geteuid() != 0:
            return "the podman sandbox needs rootful podman (run gradeflow as root), or use --sandbox bubblewrap"
        if subprocess.run(["podman", "image", "exists", self.image], capture_output=True).returncode != 0:
            return f"the grader image {self.image} is not built: run `bash images/grader/build.sh`"
        return None
