"""The zygote: runs INSIDE one submission's sandbox and forks that submission's kernels.

Starting an IPython kernel is mostly importing it (about 0.5 s of CPU). The zygote imports
ipykernel once per submission, before any student code exists in the sandbox, and forks a
fresh kernel for each notebook, so a submission with two notebooks pays the import once.
Nothing is shared between students: every submission has its own sandbox and zygote.

It is started as `python -c <this file> SOCKET` and runs as PID 1 of the sandbox's PID
namespace, so student code cannot signal it (the kernel reaches PID 1 neither by kill(-1)
nor by its pid), it is not dumpable, so student code cannot ptrace it either, and it answers
only connections from outside the sandbox (the kernel can reach the socket's directory).
Protocol, one connection per kernel, JSON lines over the Unix socket SOCKET:
  -> {"argv": [...ipykernel arguments...]}       <- {"pid": N}
  -> "kill"          (or closing the connection)  <- {"exit": CODE}  when the kernel is gone
  -> {"exit": true}  the submission is done: the zygote exits, and with it the sandbox
Its standard input is a pipe from the grader that nothing writes to: when it reads end of file,
the grader is gone (killed, even by SIGKILL) and the zygote ends the sandbox itself, so a killed
run leaves no sandbox running (a container outlives its podman client's parent otherwise).
After each kernel the zygote kills every other process in the sandbox, so the next notebook
starts from a clean process table, as a new sandbox would.
Standard library and ipykernel only: the gradeflow package is not inside the sandbox.
"""

import gc
import json
import os
import select
import signal
import socket
import stat
import struct
import sys


def _prctl_dumpable(flag: int) -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, flag, 0, 0, 0)  # PR_SET_DUMPABLE
    except Exception:  # noqa: BLE001 - hardening only; the sandbox holds without it
        pass


def _run_kernel(argv: list) -> None:
    """In the forked child: become an ordinary kernel process (see ipykernel_launcher)."""
    _prctl_dumpable(1)
    os.setpgid(0, 0)
    _detach_lifeline()
    # Signal dispositions are the interpreter's own (SIGPIPE and SIGXFSZ ignored, SIGINT raising
    # KeyboardInterrupt): the zygote never changes them, so the kernel has what a new one has.
    code = 0
    try:
        from ipykernel import kernelapp

        sys.argv = ["ipykernel_launcher", *argv]
        kernelapp.launch_new_instance()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:  # noqa: BLE001 - report like an interpreter would, then exit
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _reap(kid: int) -> int | None:
    """Reap every finished child (PID 1 inherits orphans); the kernel's exit code if it ended."""
    status = None
    while True:
        try:
            pid, st = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if pid == 0:
            return status
        if pid == kid:
            status = os.waitstatus_to_exitcode(st)


def _serve_one(conn: socket.socket) -> None:
    reader = conn.makefile("r")
    request = json.loads(reader.readline() or "{}")
    if request.get("exit"):  # the submission is done: PID 1 exiting ends the whole sandbox
        _clear_sandbox()
        os._exit(0)
    argv = request.get("argv")
    if not isinstance(argv, list):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    kid = os.fork()
    if kid == 0:
        conn.close()
        _listener.close()
        for other in _pending:
            other.close()
        _run_kernel([str(a) for a in argv])
    conn.sendall(json.dumps({"pid": kid}).encode() + b"\n")
    pidfd = os.pidfd_open(kid) if hasattr(os, "pidfd_open") else None
    code, listening = None, True
    while code is None:
        watch = [_listener, *_lifeline] + ([conn] if listening else []) + ([pidfd] if pidfd is not None else [])
        ready, _, _ = select.select(watch, [], [], 0.05 if pidfd is None else 5)
        _check_lifeline(ready, kid)
        if _listener in ready:  # answer at once: a connection from the kernel is hung up on
            _accept()
        if conn in ready:
            data = conn.recv(64)
            listening = data != b""
            if data.startswith(b"kill") or not listening:
                _kill_kernel(kid)
        code = _reap(kid)
    if pidfd is not None:
        os.close(pidfd)
    _clear_sandbox()
    try:
        conn.sendall(json.dumps({"exit": code}).encode() + b"\n")
    except OSError:
        pass


def _trusted(conn: socket.socket) -> bool:
    """Only the grader, outside the sandbox, may ask for kernels: the socket is in a directory
    the kernel can reach. As PID 1 of our namespace, a peer outside it has pid 0 here."""
    pid, _uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    if os.getpid() != 1:  # no PID namespace of our own (the Argo pod): only the grader that started us
        return pid == os.getppid()
    return pid == 0


def _accept() -> None:
    """Take one connection: queue it if it comes from the grader, else hang up."""
    conn, _ = _listener.accept()
    if _trusted(conn):
        _pending.append(conn)
    else:
        conn.close()


def _kill_kernel(kid: int) -> None:
    try:
        os.killpg(kid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _check_lifeline(ready: list, kid: int = 0) -> None:
    """If select found the grader's pipe readable and at end of file, the grader is gone: end the
    sandbox (and the kernel `kid`, which a zygote that is not PID 1 must kill itself)."""
    if not _lifeline or _lifeline[0] not in ready:
        return
    try:
        data = os.read(_lifeline[0], 64)
    except OSError:
        data = b""
    if not data:
        if kid:
            _kill_kernel(kid)
        _clear_sandbox()
        os._exit(0)


def _detach_lifeline() -> None:
    """In a kernel: standard input is /dev/null, not the zygote's pipe from the grader."""
    if _lifeline:
        fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(fd, 0)
        os.close(fd)


def _clear_sandbox() -> None:
    """Kill whatever the kernel left running (daemons, setsid'd children): only PID 1 remains."""
    if os.getpid() != 1:
        return
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        pass
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


class _LeftOut:
    """An import finder refusing the packages a grading kernel does without while the zygote imports.

    ipykernel and IPython import them only when importing works, for what nobody uses while
    grading: debugpy (ipykernel's debugger: nothing sends debug requests; ~10 % of the zygote's
    CPU, 7 MiB per sandbox) and jedi with parso (IPython's static-analysis completion: nothing
    asks for completions; ~10 %). The finder is removed after the zygote's imports, so student
    code can still import any of them itself.
    """

    NAMES = ("debugpy", "jedi", "parso")

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.partition(".")[0] in self.NAMES:
            raise ImportError(f"{name}: left out of a grading kernel")


def _embed_on_call() -> object:
    """A stand-in for `IPython.terminal.embed` while the zygote imports IPython.

    IPython's package imports its terminal shell (prompt_toolkit, wcwidth, the terminal's
    pygments lexers: ~25 % of the zygote's CPU) only to export `IPython.embed`, which a kernel
    never calls. The stand-in's `embed` imports the real one when called; it leaves sys.modules
    after the import, so `import IPython.terminal.embed` (or prompt_toolkit) in student code
    loads the real module, as in a new kernel.
    """
    import types

    module = types.ModuleType("IPython.terminal.embed")

    def embed(**kwargs: object) -> object:
        from IPython.terminal.embed import embed as real

        return real(**kwargs)

    embed.__module__ = module.__name__
    module.embed = embed  # type: ignore[attr-defined]
    return module


def main(path: str) -> None:
    global _listener
    # Not the working directory (the student's files) on sys.path while importing: a file
    # named like a module must not run in the zygote. The kernel adds it back itself.
    sys.path[:] = [p for p in sys.path if p not in ("", ".", os.getcwd())]
    _prctl_dumpable(0)
    # No garbage collection while importing: the imports allocate ~115,000 tracked objects, most of
    # which stay alive, and collecting traverses them again and again (~8 % of the zygote's CPU;
    # the cyclic garbage left uncollected is about 1 MiB).
    gc.disable()
    # What a grading kernel does without is left out of the imports (see _LeftOut, _embed_on_call).
    left_out = _LeftOut()
    sys.meta_path.insert(0, left_out)
    sys.modules["IPython.terminal.embed"] = _embed_on_call()
    try:
        import ipykernel.debugger  # noqa: F401 - imported lazily by every kernel's init
        import ipykernel.ipkernel  # noqa: F401
        import ipykernel.zmqshell  # noqa: F401
        from ipykernel import kernelapp  # noqa: F401 - the point of the zygote

        try:  # the rest of what every kernel imports, at its start or at its first traceback
            import IPython.core.completerlib  # noqa: F401
            import pygments.styles.default  # noqa: F401
            import tornado.platform.asyncio  # noqa: F401
        except ImportError:  # other versions: the kernel imports what it needs itself
            pass
    finally:
        sys.meta_path.remove(left_out)
        del sys.modules["IPython.terminal.embed"]

    # What was imported is never collected: freeze it, so that a kernel's collections skip it.
    # A full collection in a forked kernel would otherwise traverse all of it, writing to every
    # page of it (copy-on-write: ~0.1 s of CPU each). Student code has not run anywhere yet;
    # the kernels still collect everything they allocate themselves.
    gc.freeze()
    gc.enable()

    _listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    _listener.bind(path)
    _listener.listen(4)
    try:  # a pipe or socket from the grader (not /dev/null): watch it
        if stat.S_ISFIFO(os.fstat(0).st_mode) or stat.S_ISSOCK(os.fstat(0).st_mode):
            _lifeline.append(0)
    except OSError:
        pass
    while True:
        while not _pending:
            ready, _, _ = select.select([_listener, *_lifeline], [], [])
            _check_lifeline(ready)
            if _listener in ready:
                _accept()
        with _pending.pop(0) as conn:
            _serve_one(conn)


_listener: socket.socket
_pending: list = []  # the grader's requests, in order
_lifeline: list = []  # [0] when standard input is the grader's pipe (see the module's docstring)

if __name__ == "__main__":
    main(sys.argv[1])
