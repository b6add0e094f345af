# --- gradeflow attack preamble: HOST is filled in by tests/test_attacks.py ---
import os, sys, time

HOST = __HOST__
DEADLINE = time.monotonic() + HOST["budget"]


def LEAK(what):
    print(f"LEAK: {what}", flush=True)


def BLOCKED(what):
    print(f"BLOCKED: {what}", flush=True)


def probe(what, fn):
    """Run fn: LEAK if it works, BLOCKED with the error if it raises."""
    try:
        result = fn()
    except Exception as e:
        BLOCKED(f"{what}: {type(e).__name__}: {e}")
        return None
    LEAK(f"{what}: {str(result)[:160]!r}")
    return result


def read(path):
    with open(path, "rb") as fh:
        return fh.read(4096)
# --- end of preamble ---
