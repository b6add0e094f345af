"""One SQLAlchemy engine per gradebook per process, for nbgrader's Gradebook.

nbgrader's `Gradebook` creates a new engine each time it is opened, and its preprocessors
(SaveAutoGrades, AssignLatePenalties) open one per notebook. SQLAlchemy keeps its
compiled-statement cache on the engine, so every notebook compiled every query again: about
0.5 s of CPU per submission in merge and 0.2 s in score, measured. `share_engines()` makes
nbgrader reuse one engine per database URL; behaviour is unchanged (same statements, same
transactions, connections still closed by `Gradebook.close()`).

Scratch gradebooks (throwaway copies of the snapshot, see `steps.snapshot`) are marked
`volatile`: no fsync, journal in memory. The course's own gradebook keeps its database's
durable defaults.

The course's gradebook is whatever `c.CourseDirectory.db_url` names: a SQLite file or a
database server (nbgrader recommends PostgreSQL when several graders share a course).
`open_course_gradebook` checks it before anything is graded, `one_transaction` makes each
submission's writes land whole or not at all, and every message shows the URL without its
password (`shown_url`).
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy.engine import Connection

from .errors import GradebookUnavailable, TeacherError

__all__ = [
    "share_engines",
    "mark_volatile",
    "release",
    "shown_url",
    "open_course_gradebook",
    "database_errors",
    "one_transaction",
    "UNREACHABLE_TODO",
]

_engines: dict[str, Any] = {}
_volatile: set[str] = set()
_lock = threading.Lock()
_installed = False
_held = threading.local()  # db_url -> the connection of this thread's open transaction

UNREACHABLE_TODO = (
    "start the database server (or fix c.CourseDirectory.db_url in nbgrader_config.py: host, port, "
    "user, password, database), then run the same command again"
)


def _no_sync(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA synchronous=OFF")
    cur.execute("PRAGMA journal_mode=MEMORY")
    cur.close()


def _engine(url: Any, *args: Any, **kwargs: Any) -> Any:
    from sqlalchemy import create_engine, event

    key = str(url)
    held = getattr(_held, "urls", {}).get(key)
    if held is not None:
        return held
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            if not key.startswith("sqlite"):  # a server may have dropped an idle pooled connection (restart, timeout)
                kwargs.setdefault("pool_pre_ping", True)
            engine = create_engine(url, *args, **kwargs)
            if key in _volatile:
                event.listen(engine, "connect", _no_sync)
            _engines[key] = engine
        return engine


def share_engines() -> None:
    """Make nbgrader's Gradebook reuse one engine per database URL in this process."""
    global _installed
    if _installed:
        return
    import nbgrader.api

    nbgrader.api.create_engine = _engine
    metadata = nbgrader.api.Base.metadata
    create_all = metadata.create_all

    def create_tables(bind: Any = None, tables: Any = None, checkfirst: bool = True) -> None:
        """nbgrader's Gradebook creates any missing table on every open (a query per table); a
        scratch gradebook is a copy of one built with all of them (steps.snapshot)."""
        if bind is not None and str(bind.engine.url) in _volatile:
            return
        create_all(bind=bind, tables=tables, checkfirst=checkfirst)

    metadata.create_all = create_tables
    _installed = True


def mark_volatile(url: str) -> None:
    """A scratch gradebook: nothing to keep after a crash, so skip fsync."""
    with _lock:
        _volatile.add(url)


def release(url: str) -> None:
    """Close the engine's connections (before the database file is replaced)."""
    with _lock:
        engine = _engines.get(url)
    if engine is not None:
        engine.dispose()


def shown_url(db_url: str) -> str:
    """The database URL as a teacher may see it in a message or log: the password masked."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(db_url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an unreadable database URL)"


def _password(db_url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(db_url).password or ""
    except ArgumentError:
        return ""


def _database_error(e: BaseException | None) -> BaseException | None:
    """The driver error behind `e`: nbgrader re-raises them as InvalidEntry, keeping only the text."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, (OperationalError, InterfaceError)):
            return e
        e = e.__cause__ or e.__context__
    return None


@contextlib.contextmanager
def database_errors(db_url: str, what: str, todo: str = UNREACHABLE_TODO) -> Iterator[None]:
    """Turn an unreachable or lost database into a GradebookUnavailable: `what` (its "{url}" is
    the URL with the password hidden) and the driver's first line.

    SQLite's "database is locked" passes through: that gradebook is busy, not gone.
    """
    try:
        yield
    except Exception as e:
        cause = _database_error(e)
        if cause is None or "database is locked" in str(cause):
            raise
        orig = getattr(cause, "orig", None) or cause
        reason = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
        password = _password(db_url)
        if password:
            reason = reason.replace(password, "***")
        raise GradebookUnavailable(f"{what.replace('{url}', shown_url(db_url))}: {reason}", todo) from None


def open_course_gradebook(db_url: str, course_id: str, todo_missing: str) -> Any:
    """nbgrader's Gradebook on a course's database, looked at first.

    nbgrader would create an empty gradebook where there is none, and a server that is down or
    refuses the login would surface as a traceback; here each is a TeacherError before anything
    is graded.
    """
    from nbgrader.api import Gradebook
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(db_url)
    except ArgumentError:
        raise TeacherError(
            "c.CourseDirectory.db_url is not a database URL",
            "set it in nbgrader_config.py to e.g. sqlite:////path/to/gradebook.db or postgresql://USER:PASSWORD@HOST/DATABASE",
        ) from None
    if (
        url.get_backend_name() == "sqlite"
        and url.database
        and url.database != ":memory:"
        and not Path(url.database).is_file()
    ):
        raise TeacherError(f"no gradebook at {url.database}", todo_missing)
    with database_errors(db_url, "cannot open the gradebook database {url}"):
        try:
            engine = create_engine(db_url)
        except (ImportError, NoSuchModuleError) as e:
            raise GradebookUnavailable(
                f"no database driver for {shown_url(db_url)} ({e})",
                "install it in gradeflow's Python: pip install 'gradeflow[postgres]' for postgresql:// URLs",
            ) from None
        try:
            tables = inspect(engine).get_table_names()
        finally:
            engine.dispose()  # only a look: no idle connection stays behind in a long-lived process
        if "assignment" not in tables:
            raise TeacherError(f"no gradebook in {shown_url(db_url)}", todo_missing)
        return Gradebook(db_url, course_id)


class _Held(Connection):
    """One transaction's connection, handed to nbgrader's Gradebook in place of an engine: a
    Gradebook's close() disposes its engine, which must not end the transaction."""

    def dispose(self) -> None:
        pass


@contextlib.contextmanager
def one_transaction(db_url: str) -> Iterator[None]:
    """Every nbgrader Gradebook this thread opens on `db_url` inside the block shares one
    connection and one transaction: committed at the end, rolled back on any error.

    nbgrader commits after each grade it saves; merge needs a submission to land whole or not
    at all, so a lost connection never leaves half of one. A Session bound to a connection that
    is already in a transaction joins it without committing it (SQLAlchemy's default
    join_transaction_mode), so nbgrader's commits stay inside ours.
    """
    share_engines()
    urls = _held.__dict__.setdefault("urls", {})
    if db_url in urls:
        raise RuntimeError(f"one_transaction({shown_url(db_url)}) is already open in this thread")
    conn = _Held(_engine(db_url))
    try:
        with conn.begin():
            urls[db_url] = conn
            try:
                yield
            finally:
                del urls[db_url]
    finally:
        conn.close()
