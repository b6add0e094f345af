# name: memory-bomb-children
# threat: the machine's memory, spread over child processes so that no per-process limit (rlimit) is hit
# contained: the children together cannot hold more than the memory limit (the cgroup counts the whole tree): the OOM killer kills inside the sandbox only
# outcome: any
MiB = 1 << 20
cap = min(3 * HOST["memory_mb"], 4096)
per_child = cap // 4
deadline = time.monotonic() + min(HOST["budget"], 6)
children = {}
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            held = [b"\x01" * MiB for _ in range(per_child)]
            code = 0
            while time.monotonic() < deadline:  # hold it, together with the others
                time.sleep(0.05)
        finally:
            os._exit(code)
    children[pid] = per_child
survived = 0
for pid, mb in children.items():
    _, status = os.waitpid(pid, 0)
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        survived += mb
    else:
        print(f"child {pid} ended with status {status:#x}")
if survived > HOST["memory_mb"]:
    LEAK(f"children held {survived} MiB at once (limit {HOST['memory_mb']} MiB)")
else:
    BLOCKED(f"children held at most {survived} of the {cap} MiB they asked for (limit {HOST['memory_mb']} MiB)")

def squares(n):
    return [i * i for i in range(1, n + 1)]
