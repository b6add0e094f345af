"""The `none` sandbox: student code runs as you, with your files in reach.

Only for notebooks you trust, and only when asked for by name (`gradeflow grade
--unsafe-no-sandbox`, which prints a warning first). The base launcher contains nothing: the
kernel is started as jupyter_client would start it, with the clean environment of every sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import KernelSandbox

__all__ = ["NoSandbox"]


@dataclass(kw_only=True)
class NoSandbox(KernelSandbox):
    name = "none"
    guarantee = "NONE: student code runs as you and can read and change your files"
    contained = False
