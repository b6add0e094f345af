"""The object store where a run's artifacts live: a local directory or any fsspec URL.

A run is a prefix `<store>/<run_id>/` laid out exactly like a step workspace (see
steps.contract). With a local store the workspace *is* that directory; with a remote one
(`s3://bucket/prefix`, MinIO included) steps work in a local temp dir and each step's
outputs are pushed as soon as the step finishes, so the store always holds the evidence.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import fsspec
from fsspec.implementations.local import LocalFileSystem

from steps.contract import MANIFEST
from steps.errors import TeacherError

__all__ = ["Store", "open_store", "RUNS_DIR"]

RUNS_DIR = "gradeflow_runs"  # in the course directory: the default store, the state and the lock of its runs


class Store:
    """A run store. `open_store(url)` picks the class by the URL's filesystem."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url)
        except ImportError as e:
            raise TeacherError(
                f"cannot open store {url}: {e}", "for s3:// URLs install the extra: pip install 'gradeflow[s3]'"
            ) from None
        except ValueError as e:  # fsspec: "Protocol not known"
            raise TeacherError(
                f"cannot open store {url}: {e}",
                "use a directory, file://PATH or s3://BUCKET/PREFIX (any fsspec URL works)",
            ) from None
        self.root = self.root.rstrip("/")

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def key(self, run_id: str, rel: str = "") -> str:
        return "/".join(p for p in (self.root, run_id, rel.strip("/")) if p)

    def run_url(self, run_id: str) -> str:
        return f"{self.url}/{run_id}"

    @contextlib.contextmanager
    def workspace(self, run_id: str) -> Iterator[Path]:
        """A local directory for the run's workspace (the run dir itself for a local store)."""
        if self.is_local:
            path = Path(self.key(run_id))
            path.mkdir(parents=True, exist_ok=True)
            yield path
            return
        tmp = Path(tempfile.mkdtemp(prefix=f"gradeflow-{run_id}-"))
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def push(self, workspace: Path, run_id: str, rel: str) -> None:
        """Upload workspace/rel (file or directory) to the run's prefix."""
        if self.is_local:
            return
        src = workspace / rel
        try:
            if src.is_dir():
                self.fs.put(str(src) + "/", self.key(run_id, rel), recursive=True)
            elif src.exists():
                self.fs.put_file(str(src), self.key(run_id, rel))
        except Exception as e:  # noqa: BLE001 - a network or permission problem the teacher must fix
            raise TeacherError(
                f"could not upload {rel} to {self.run_url(run_id)}: {e}",
                "check the store URL, credentials and that the bucket exists",
            ) from None

    def pull(self, run_id: str, workspace: Path, rel: str = "") -> None:
        """Download the run's prefix (or one artifact of it) into workspace."""
        if self.is_local:
            return
        key = self.key(run_id, rel)
        if not self.fs.exists(key):
            raise TeacherError(
                f"{self.url}/{run_id}/{rel} does not exist", "check the run id (`gradeflow status`) and the store URL"
            )
        target = workspace / rel
        if self.fs.isdir(key):
            target.mkdir(parents=True, exist_ok=True)
            self.fs.get(key + "/", str(target) + "/", recursive=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(key, str(target))

    def runs(self) -> list[str]:
        """Run ids in this store, oldest first."""
        if not self.fs.exists(self.root):
            return []
        return sorted(
            Path(p).name
            for p in self.fs.ls(self.root, detail=False)
            if self.fs.isdir(p) and self.fs.exists(f"{p}/{MANIFEST.at()}")
        )


def open_store(url: str | Path) -> Store:
    return Store(str(url))
