"""Kernel sandboxes that add no containment of their own.

`pod` is for running *inside* a container that already is the sandbox (the Argo execute
pod, the podman grader container): the kernel starts directly, with a clean environment.
`none` runs student code as you, with your files in reach: only for notebooks you trust,
and only when asked for by name (`--unsafe-no-sandbox`).
"""
from __future__ import annotations

from .base import KernelSandbox

__all__ = ["PodSandbox", "NoSandbox"]


class PodSandbox(KernelSandbox):
    name = "pod"
    guarantee = "whatever the enclosing container enforces (Argo pod security context, podman flags); clean environment"


class NoSandbox(KernelSandbox):
    name = "none"
    guarantee = "NONE: student code runs as you and can read and change your files"
    contained = False
