# name: memory-bomb
# threat: the machine's memory (the OOM killer picking the teacher's processes or other students' kernels)
# contained: the kernel cannot hold more than the memory limit: it gets a MemoryError or is killed alone; other students are graded correctly
# outcome: any
MiB = 1 << 20
cap = min(3 * HOST["memory_mb"], 4096)
held = []
try:
    while len(held) * 16 < cap and time.monotonic() < DEADLINE:
        held.append(b"\x01" * (16 * MiB))  # every page touched
except MemoryError:
    BLOCKED(f"MemoryError after {len(held) * 16} MiB (limit {HOST['memory_mb']} MiB)")
else:
    if len(held) * 16 > HOST["memory_mb"]:
        LEAK(f"held {len(held) * 16} MiB (limit {HOST['memory_mb']} MiB)")
    else:
        BLOCKED(f"only {len(held) * 16} MiB before the deadline")
del held

def squares(n):
    return [i * i for i in range(1, n + 1)]
