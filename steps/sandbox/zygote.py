"""Kernels forked from a warmed interpreter inside the submission's own sandbox.

A submission's first kernel start launches a zygote (`zygote_main.py`) in the sandbox, the
same sandbox a kernel would get; it imports ipykernel before any student code exists there
and forks one fresh kernel per notebook. jupyter_client manages a forked kernel like any
other: `ForkedKernel` is the small part of `subprocess.Popen` its LocalProvisioner uses.
One zygote per submission, never reused by another student.
The sandbox's `zygote` option turns it off: kernels then start directly. Users set it with
GRADEFLOW_ZYGOTE=0, read where gradeflow starts (`zygote_enabled(os.environ)` in the CLIs).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Mapping

from ..errors import SandboxError

__all__ = ["Zygote", "ForkedKernel", "zygote_enabled", "ipykernel_arguments", "SOURCE", "ZYGOTE_ENV"]

log = logging.getLogger("gradeflow.execute")
SOURCE = (Path(__file__).with_name("zygote_main.py")).read_text(encoding="utf-8")


ZYGOTE_ENV = "GRADEFLOW_ZYGOTE"


def zygote_enabled(environ: Mapping[str, str]) -> bool:
    """The `zygote` option as the user set it in `environ` (GRADEFLOW_ZYGOTE=0 turns it off)."""
    return environ.get(ZYGOTE_ENV, "1").lower() not in ("0", "no", "false", "off")


def ipykernel_arguments(argv: list[str]) -> list[str] | None:
    """The ipykernel arguments of a `python -m ipykernel_launcher -f FILE ...` command, else None
    (another kernel, e.g. R: started directly)."""
    if len(argv) >= 5 and argv[1:3] == ["-m", "ipykernel_launcher"] and "-f" in argv:
        return argv[3:]
    return None


class ForkedKernel:
    """A kernel forked by the zygote, as jupyter_client's provisioner sees a process."""

    stdin = stdout = stderr = None

    def __init__(self, conn: socket.socket, pid: int, buffered: bytes = b"") -> None:
        self._conn = conn
        self._buf = buffered  # what arrived after the pid line (an exit report, if it was quick)
        self.pid = pid  # in the sandbox's PID namespace
        self.returncode: int | None = None
        self._killed = False
        self._consume()

    def _consume(self) -> None:
        """Act on every complete line received so far."""
        while b"\n" in self._buf and self.returncode is None:
            line, self._buf = self._buf.split(b"\n", 1)
            msg = json.loads(line)
            if "exit" in msg:
                self.returncode = msg["exit"]
                self._conn.close()

    def _read(self, timeout: float | None) -> None:
        self._conn.settimeout(timeout)
        try:
            data = self._conn.recv(4096)
        except (BlockingIOError, socket.timeout):
            return
        except OSError:
            data = b""
        if not data:  # the zygote is gone, and with it (PID 1) the whole sandbox
            self.returncode = -signal.SIGKILL if self.returncode is None else self.returncode
            self._conn.close()
            return
        self._buf += data
        self._consume()

    def poll(self) -> int | None:
        if self.returncode is None:
            # after a kill the exit report is a few ms away: wait for it rather than have the
            # provisioner sleep 0.1 s between polls
            self._read(0.05 if self._killed else 0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired("kernel", timeout or 0)
            self._read(left)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        """Only stopping is supported: interrupts go over the control channel (interrupt_mode=message)."""
        if signum in (signal.SIGKILL, signal.SIGTERM):
            self.kill()
        else:
            log.debug("signal %s to a forked kernel ignored", signum)

    def kill(self) -> None:
        if self.returncode is None:
            self._killed = True
            try:
                self._conn.sendall(b"kill\n")
            except OSError:
                pass

    terminate = kill


class Zygote:
    """The zygote process of one submission; `spawn` asks it for a kernel."""

    def __init__(
        self,
        command: list[str],
        env: dict[str, str],
        cwd: Path,
        socket_path: Path,
        logfh: Any,
        start_timeout: float = 60,
        python: str = "",
    ) -> None:
        self.socket_path = socket_path
        self.start_timeout = start_timeout
        self.python = python  # the interpreter it runs: only kernels of that one are forked from it
        self.forked = 0
        self.started = time.monotonic()
        self.ready_s: float | None = None  # how long the first kernel waited for it, for execute.json
        self.head_start_s: float | None = None  # started this long before its submission was handed over
        # Its standard input is a pipe only this process writes to (nothing is ever written): if this
        # process dies, even by SIGKILL, the zygote reads end of file and ends its sandbox itself.
        self.proc = subprocess.Popen(
            command, env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=logfh, stderr=logfh, start_new_session=True
        )

    def handed_over(self) -> None:
        """Its sandbox was just given a submission (the zygote started before it was known)."""
        self.head_start_s = round(time.monotonic() - self.started, 3)

    def _connect(self) -> socket.socket:
        t0 = time.monotonic()
        deadline = t0 + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise SandboxError(f"the kernel zygote exited with code {self.proc.returncode} before it was ready")
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                conn.connect(str(self.socket_path))
                if self.ready_s is None:
                    self.ready_s = round(time.monotonic() - t0, 3)
                return conn
            except (FileNotFoundError, ConnectionRefusedError):
                conn.close()
            if time.monotonic() > deadline:
                raise SandboxError(f"the kernel zygote was not ready after {self.start_timeout:.0f} s")
            time.sleep(0.01)

    def spawn(self, arguments: list[str]) -> ForkedKernel:
        """A new kernel with these ipykernel arguments (`-f CONNECTION_FILE ...`)."""
        conn = self._connect()
        conn.sendall(json.dumps({"argv": arguments}).encode() + b"\n")
        conn.settimeout(self.start_timeout)
        reply = b""
        while b"\n" not in reply:
            chunk = conn.recv(256)
            if not chunk:
                conn.close()
                raise SandboxError("the kernel zygote closed the connection instead of starting a kernel")
            reply += chunk
        line, rest = reply.split(b"\n", 1)
        self.forked += 1
        return ForkedKernel(conn, json.loads(line)["pid"], rest)

    def stop(self) -> None:
        """End the sandbox politely (nothing left to kill afterwards), or kill it."""
        if self.proc.poll() is None:
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                    conn.settimeout(2)
                    conn.connect(str(self.socket_path))
                    conn.sendall(b'{"exit": true}\n')
                self.proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                self.proc.kill()
        self.proc.wait()
        if self.proc.stdin is not None:
            self.proc.stdin.close()
