# name: kill-parent
# threat: the grading process (papermill, the runner) or the sandbox's supervisor, to break the run or escape the sandbox's bookkeeping
# contained: SIGKILL to the parent and to pid 1 reaches no process outside the sandbox; the run completes and grades this notebook
# outcome: graded
import signal

ppid = os.getppid()
with open(f"/proc/{ppid}/cmdline", "rb") as fh:
    print(f"parent pid inside the sandbox: {ppid}: {fh.read()[:60]!r}")
for target in (ppid, 1):
    try:
        os.kill(target, signal.SIGKILL)
    except OSError as e:
        BLOCKED(f"SIGKILL {target}: {type(e).__name__}: {e}")
        continue
    time.sleep(0.5)
    if os.path.exists(f"/proc/{target}"):
        BLOCKED(f"pid {target} survived SIGKILL")
    else:
        LEAK(f"killed pid {target}")
BLOCKED("the kernel is still running after trying to kill its parent")

def squares(n):
    return [i * i for i in range(1, n + 1)]
