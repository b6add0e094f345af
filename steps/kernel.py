"""Running one notebook with papermill, with the kernel launched through a sandbox.

papermill's nbclient engine does the work (per-cell bookkeeping, saving after every cell);
this module adds only what neither it nor nbgrader has: a kernel manager whose kernel
command and environment come from a sandbox backend and whose sockets are Unix sockets
(so a kernel with no network can still talk to us), and an output cap that protects the
grading process from an output flood. nbgrader's own Execute preprocessor supplies the
execution settings (30 s cell timeout that interrupts, errors allowed, timeout error text).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from pathlib import Path
from queue import Empty
from typing import Any, Callable

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from nbclient.util import run_sync
from nbformat import NotebookNode
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.utils import merge_kwargs, remove_args
from traitlets import Any as AnyTrait
from traitlets import DottedObjectName, Integer, Type

__all__ = [
    "SandboxKernelManager",
    "SandboxKernelClient",
    "CappedNotebookClient",
    "GradeflowEngine",
    "nbgrader_execute_settings",
]

log = logging.getLogger("gradeflow.execute")


class SandboxKernelClient(AsyncKernelClient):
    """jupyter_client's async client with a shorter wait at kernel start.

    jupyter_client ends `wait_for_ready` by draining IOPub until it has been quiet for 0.2 s:
    a fixed 0.2 s per notebook. nbclient matches every message to its request by msg_id, so
    draining what is already there is enough.
    """

    drain_quiet = 0.01

    async def _async_wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
        while True:
            self.kernel_info()
            try:
                msg = await self._async_get_shell_msg(timeout=1)
            except Empty:
                pass
            else:
                if msg["msg_type"] == "kernel_info_reply":
                    try:  # IOPub connected? (the kernel's status messages arrive on it)
                        await self._async_get_iopub_msg(timeout=0.2)
                    except Empty:
                        pass
                    else:
                        self._handle_kernel_info_reply(msg)
                        break
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")
        while True:
            try:
                await self._async_get_iopub_msg(timeout=self.drain_quiet)
            except Empty:
                return

    wait_for_ready = _async_wait_for_ready


class SandboxKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel is started by `launcher` (a sandbox backend).

    `launcher.kernel_command(argv)` wraps the kernel's argv and `launcher.kernel_env()`
    replaces the environment, so the teacher's environment (tokens, keys) never reaches it.
    """

    launcher = AnyTrait(allow_none=False)
    client_class = DottedObjectName("steps.kernel.SandboxKernelClient")
    client_factory = Type(klass="steps.kernel.SandboxKernelClient")

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        argv = super().format_kernel_cmd(extra_arguments)
        # Interrupt through the control channel, not a signal: signals would hit the sandbox's
        # own supervisor process (bwrap) instead of the kernel.
        self.kernel_spec.interrupt_mode = "message"
        self.launcher.prepare_connection(Path(self.connection_file))
        return argv  # contained in _async_launch_kernel: forked in the sandbox, or wrapped

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        forked = self.launcher.fork_kernel(kernel_cmd)
        if forked is not None:  # jupyter_client's provisioner manages it like a process
            provisioner = self.provisioner
            provisioner.process, provisioner.pid, provisioner.pgid = forked, forked.pid, None  # type: ignore[union-attr]
            self._reconcile_connection_info(provisioner.connection_info)  # type: ignore[union-attr]
            return
        kw["env"] = self.launcher.kernel_env()
        if self.launcher.logfh is not None:  # the kernel's own stdout/stderr go to execute.log
            kw["stdout"] = kw["stderr"] = self.launcher.logfh
        await super()._async_launch_kernel(self.launcher.kernel_command(kernel_cmd), **kw)


def _size(content: dict[str, Any]) -> int:
    """About how many bytes an output adds to the notebook (cheap: a flood sends many)."""
    data = content.get("data") or {}
    return (
        64
        + len(content.get("text") or "")
        + sum(len(v) if isinstance(v, str) else len(json.dumps(v)) for v in data.values())
        + sum(map(len, content.get("traceback") or []))
    )


class CappedNotebookClient(PapermillNotebookClient):
    """papermill's client with a byte budget for outputs: past it, output is dropped with a note."""

    max_output_bytes = Integer(8 * 1024 * 1024).tag(config=True)
    integrity = AnyTrait(
        None, allow_none=True, help="a steps.integrity.IntegrityMonitor, probing the kernel before test cells"
    )
    _spent = 0
    _capped = False

    async def async_execute_cell(
        self, cell: NotebookNode, cell_index: int, execution_count: int | None = None, store_history: bool = True
    ) -> NotebookNode:
        if self.integrity is not None and cell.cell_type == "code" and cell.source.strip():
            await self.integrity.before_cell(self.kc, cell, cell_index)
        return await super().async_execute_cell(cell, cell_index, execution_count, store_history)

    execute_cell = run_sync(async_execute_cell)  # nbclient binds its own at class creation

    def output(
        self, outs: list[NotebookNode], msg: dict[str, Any], display_id: str | None, cell_index: int
    ) -> NotebookNode | None:
        self._spent += _size(msg.get("content", {}))
        if self._spent <= self.max_output_bytes:
            return super().output(outs, msg, display_id, cell_index)
        if not self._capped:
            self._capped = True
            note = NotebookNode(
                output_type="stream",
                name="stderr",
                text=f"gradeflow: output limit of {self.max_output_bytes // 1024} KiB reached; "
                "further output was dropped\n",
            )
            outs.append(note)
        return None


class GradeflowEngine(NBClientEngine):
    """papermill's nbclient engine, running CappedNotebookClient."""

    @classmethod
    def execute_managed_notebook(
        cls,
        nb_man,
        kernel_name,
        log_output=False,
        stdout_file=None,
        stderr_file=None,
        start_timeout=60,
        execution_timeout=None,
        **kwargs,
    ):  # type: ignore[override]
        kwargs = remove_args(["input_path"], **kwargs)
        safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
        final_kwargs = merge_kwargs(
            safe_kwargs,
            timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
            startup_timeout=start_timeout,
            kernel_name=kernel_name,
            log=log,
            log_output=log_output,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
        )
        client = CappedNotebookClient(nb_man, **final_kwargs)
        client.owns_km = True  # the sandbox's kernel manager is passed in; nbclient still shuts it down
        return client.execute()


papermill_engines.register("gradeflow", GradeflowEngine)


def nbgrader_execute_settings(config: dict[str, Any], cell_timeout: int | None = None) -> dict[str, Any]:
    """nbgrader's Execute settings (with the course's config) as nbclient keyword arguments."""
    from nbgrader.preprocessors import Execute
    from traitlets.config import Config

    ex = Execute(config=Config(config))
    on_cell_executed: Callable[..., None] = lambda **kw: Execute.on_cell_executed(ex, **kw)  # noqa: E731
    return {
        "timeout": cell_timeout if cell_timeout is not None else ex.timeout,
        "interrupt_on_timeout": ex.interrupt_on_timeout,
        "allow_errors": ex.allow_errors,
        "raise_on_iopub_timeout": ex.raise_on_iopub_timeout,
        "error_on_timeout": ex.error_on_timeout,
        "extra_arguments": list(ex.extra_arguments),
        "iopub_timeout": ex.iopub_timeout,
        "on_cell_executed": on_cell_executed,
        # nbclient does not run cells tagged `skip-execution`, and a test cell that never ran has no
        # error, so nbgrader gives it full marks. Tags are the student's to write: let none skip a cell.
        "skip_cells_with_tag": f"gradeflow-never-skip-{secrets.token_hex(8)}",
    }
