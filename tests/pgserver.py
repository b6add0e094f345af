"""A throwaway PostgreSQL server for tests: Debian's postgresql-15, started and stopped by the tests.

`PgServer.start()` runs `initdb` into a fresh directory under /tmp and `pg_ctl start` on
127.0.0.1 (a free port, password login for the `grader` role, as a course's db_url would
use) and on a Unix socket in that directory (trusted, for the `postgres` superuser the tests
administer with). PostgreSQL refuses to run as root, so as root the server runs as the
unprivileged `postgres` user (setpriv). `course_database()` gives each course its own
database, so two copies of a course never share a gradebook.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from processes import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
GRADER = "grader"
# A password no test output may ever contain (the tests grep for it).
PASSWORD = f"pw-{secrets.token_hex(8)}"


def missing() -> str:
    """Why no server can start here ('' when it can)."""
    if not (PG_BIN / "initdb").is_file():
        return f"POSTGRESQL MISSING: {PG_BIN}/initdb not found; apt-get install postgresql (.ci/setup does)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "PSYCOPG MISSING: pip install 'psycopg[binary]' (gradeflow's `postgres` and `dev` extras)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "NO postgres USER: PostgreSQL will not run as root and the package's `postgres` user is missing"
    return ""


class PgServer:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="gradeflow-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self._as_user = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"]

    def _run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._as_user, *cmd], capture_output=True, text=True, check=check, cwd=self.root, timeout=120
        )

    def start(self) -> "PgServer":
        if not self.data.exists():
            self._run(
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            )
        opts = f"-k {self.root} -h 127.0.0.1 -p {self.port} -c fsync=off -c max_connections=60"
        proc = self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            opts,
            "-w",
            "-t",
            "60",
            "start",
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed:\n{proc.stdout}{proc.stderr}\n{self.log()[-3000:]}")
        if not self.admin("SELECT 1 FROM pg_roles WHERE rolname = %s", GRADER):
            self.admin(f"CREATE ROLE {GRADER} LOGIN PASSWORD '{PASSWORD}' CREATEDB")
        return self

    def stop(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.is_file() else ""

    def connect(self, dbname: str = "postgres") -> Any:
        """A superuser connection over the Unix socket (autocommit), for administering and inspecting."""
        import psycopg

        return psycopg.connect(host=str(self.root), port=self.port, user="postgres", dbname=dbname, autocommit=True)

    def admin(self, sql: str, *params: Any, dbname: str = "postgres") -> list[tuple]:
        conn = self.connect(dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params or None)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def url(self, dbname: str, password: str = PASSWORD, port: int | None = None) -> str:
        """The db_url a course puts in nbgrader_config.py: the grader role over TCP with its password."""
        return f"postgresql://{GRADER}:{password}@127.0.0.1:{port or self.port}/{dbname}"

    def course_database(self, name: str, template: str | None = None) -> str:
        """A new database owned by the grader role (a copy of `template` when given); its URL."""
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if template:  # a template must have no other session while it is copied
            self.admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", template)
        self.admin(f'CREATE DATABASE "{name}" OWNER {GRADER}' + (f' TEMPLATE "{template}"' if template else ""))
        return self.url(name)


def use_database(course: Path, db_url: str) -> None:
    """Point a course's nbgrader_config.py at `db_url` (the last setting wins)."""
    with open(course / "nbgrader_config.py", "a") as fh:
        fh.write(f"\nc.CourseDirectory.db_url = {db_url!r}\n")
