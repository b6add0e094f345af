"""Child processes the tests start: the gradeflow CLI, and local servers on free ports.

One copy of each, so that every test runs the CLI the way a script or cron job does (pipes,
no terminal, no stdin) and starts S3 (moto) and Jupyter the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator


def gradeflow(
    *args: str, env: dict[str, str] | None = None, drop: tuple[str, ...] = (), timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """`gradeflow ARGS` in a child process with stdout and stderr as pipes and no stdin. `env`
    adds variables to this process's; `drop` removes those whose names start with one of its
    prefixes."""
    environ = {k: v for k, v in os.environ.items() if not (drop and k.startswith(drop))}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environ,
        stdin=subprocess.DEVNULL,
    )


def grade_json(course: Path, *args: str, timeout: float = 600) -> dict[str, Any]:
    """`gradeflow grade COURSE ps1 --json ARGS`, which must exit 0: the run's results."""
    run = gradeflow("grade", str(course), "ps1", "--json", *args, timeout=timeout)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def moto_s3() -> Iterator[dict[str, str]]:
    """A real S3 API (moto's server) on 127.0.0.1 while the block runs; yields the AWS_*
    variables that reach it."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per S3 request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    finally:
        server.stop()


class JupyterServer:
    """`jupyter server` in a course folder with gradeflow's page enabled by a config file (as a
    teacher enables it), on a free port with a token, Argo unconfigured. Its log is HOME/server.log."""

    def __init__(self, course: Path, home: Path) -> None:
        (home / "config").mkdir(parents=True, exist_ok=True)
        (home / "config" / "jupyter_server_config.json").write_text(
            json.dumps(
                {
                    "ServerApp": {"jpserver_extensions": {"pipelines.jupyter": True}},
                    "GradeflowConfig": {"jobs": 2, "grade_args": ["--cell-timeout", "10"]},
                }
            )
        )
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}/"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ARGO_", "KUBERNETES_"))}
        env.update(
            JUPYTER_CONFIG_DIR=str(home / "config"),
            JUPYTER_RUNTIME_DIR=str(home / "runtime"),
            KUBECONFIG=str(home / "no-kubeconfig"),
        )
        self.log = home / "server.log"
        cmd = [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            "--allow-root",
            f"--port={self.port}",
            "--ip=127.0.0.1",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={course}",
        ]
        with open(self.log, "w") as fh:
            self.proc = subprocess.Popen(
                cmd, cwd=course, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + 90
        while True:
            with contextlib.suppress(OSError):
                if self.get("api/status")[0] == 200:
                    return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"jupyter server did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.5)

    def get(self, path: str, token: bool = True) -> tuple[int, str]:
        """GET PATH (with the token unless `token` is False): (status, body text)."""
        sep = "&" if "?" in path else "?"
        try:
            with urllib.request.urlopen(
                self.url + path + (f"{sep}token={self.token}" if token else ""), timeout=30
            ) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def call(self, method: str, path: str, body: Any = None, timeout: float = 60) -> tuple[int, Any]:
        """An API request with a JSON body: (status, the JSON answer, or the error text)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.url}{path}?token={self.token}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                text = r.read().decode()
                return r.status, json.loads(text) if text.strip() else None
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def __enter__(self) -> JupyterServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
