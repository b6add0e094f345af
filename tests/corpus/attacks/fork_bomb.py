# name: fork-bomb
# threat: the machine's process table and CPU (every other student's kernel, the teacher's session)
# contained: at most HOST["pids"] processes and threads exist at once; the forks spin on the CPU until the deadline, and other students are still graded correctly
# outcome: graded
import ctypes

libc = ctypes.CDLL(None)
deadline = time.monotonic() + min(HOST["budget"], 6)
r, w = os.pipe()
refused, mine = 0, []


def bomb(depth):
    """Fork up to 6 children per process, 3 levels deep (at most 258 processes), then spin."""
    global refused
    for _ in range(6):
        if time.monotonic() > deadline:
            break
        try:
            pid = os.fork()
        except OSError:
            refused += 1
            time.sleep(0.05)
            continue
        if pid == 0:
            try:
                libc.prctl(15, HOST["marker"].encode(), 0, 0, 0)  # PR_SET_NAME: findable from the host
                os.setsid()  # a session (and CPU autogroup) of its own, as a scheduler-aware bomb would
                os.write(w, b"+")
                if depth < 3:
                    bomb(depth + 1)
                while time.monotonic() < deadline:  # burn CPU until the deadline
                    pass
            finally:
                os._exit(0)
        if depth == 1:
            mine.append(pid)


bomb(1)
for pid in mine:
    os.waitpid(pid, 0)
os.close(w)
started = len(os.read(r, 4096))
os.close(r)
if started >= HOST["pids"]:
    LEAK(f"{started} processes started (limit {HOST['pids']})")
else:
    BLOCKED(f"fork bomb stopped at {started} processes; the kernel's own forks were refused {refused} times")

def squares(n):
    return [i * i for i in range(1, n + 1)]
