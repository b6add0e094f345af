# name: kill-everything
# threat: every process the kernel's uid can signal (os.kill(-1, SIGKILL)): other students' kernels, the grader
# contained: only the sandbox's own processes are visible and killable; other students are still graded and the run completes
# outcome: graded
import signal

visible = {}
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            with open(f"/proc/{p}/cmdline", "rb") as fh:
                visible[int(p)] = fh.read().replace(b"\0", b" ").decode(errors="replace")[:100]
        except OSError:
            pass
print("processes visible:", visible)
host = [c for c in visible.values() if any(w in c for w in ("pytest", "forkserver", "multiprocessing", "gradeflow grade"))]
if host or len(visible) > 10:
    LEAK(f"sees {len(visible)} processes, the grader's among them: {host[:3]}")
else:
    BLOCKED(f"sees only the sandbox's {len(visible)} processes")
try:
    os.kill(-1, signal.SIGKILL)
except ProcessLookupError:
    pass  # nothing else to kill: only the sandbox's init (immune) and the kernel itself are there
BLOCKED("the kernel is still alive after kill(-1, SIGKILL)")

def squares(n):
    return [i * i for i in range(1, n + 1)]
