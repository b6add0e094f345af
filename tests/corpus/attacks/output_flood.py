# name: output-flood
# threat: the grading process's memory and the host's disk, through notebook output and the kernel's raw stdout (which goes to execute.log, and for containers through the container runtime)
# contained: the executed notebook keeps at most the output limit (plus a note); execute.log stays under the disk limit (the raw part, 40 MiB, is above the test's 32 MiB); the run goes on
# outcome: any  (bubblewrap: graded, the kernel's writes fail; podman: past the limit the client exits and the kernel is reported dead)
# allowed_errors: KeyboardInterrupt CellTimeoutError  (a raw write can block for good once the log is full)
import select


def squares(n):  # defined first: a flood may not come back
    return [i * i for i in range(1, n + 1)]


BLOCKED("reported up front, as the flood drops what follows: the test checks what was kept")
MiB = 1 << 20
line = ("x" * 1023 + "\n") * 1024  # 1 MiB
sent = 0
while sent < 10 * MiB and time.monotonic() < DEADLINE:
    print(line, end="")
    sent += len(line)
sys.stdout.flush()
raw = 0
os.set_blocking(1, False)  # once the log is full, ipykernel's fd-1 pipe may stop draining: don't hang on it
try:
    while raw < 40 * MiB and time.monotonic() < DEADLINE:  # straight to fd 1, around the kernel's output capture
        if not select.select([], [1], [], 1.0)[1]:
            raise TimeoutError("fd 1 stopped draining for 1 s")
        try:
            raw += os.write(1, line.encode())
        except BlockingIOError:
            pass
except OSError as e:
    print(f"raw write stopped after {raw // MiB} MiB: {type(e).__name__}: {e}")
finally:
    os.set_blocking(1, True)
print(f"sent {sent // MiB} MiB of output and {raw // MiB} MiB to fd 1")
