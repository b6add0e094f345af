# name: disk-filler
# threat: the grader's disk (the host's /tmp, where the work dir and the kernel's socket dir live), the sandbox's /tmp and its root (a tmpfs: memory)
# contained: none of the work dir, the socket dir, /tmp and the sandbox's root takes more than the disk limit, in one file or in many
# outcome: graded
MiB = 1 << 20
chunk = b"\0" * (4 * MiB)
cap = 1024 * MiB
import glob

# the work dir, the kernel's socket dir (a writable bind of the host's scratch dir), /tmp, and /
for target in ["/work", *glob.glob("/tmp/gradeflow-execute-*/ipc-*"), "/tmp", "/"]:
    written, files = 0, []
    try:
        while written < cap and time.monotonic() < DEADLINE:
            path = os.path.join(target, f"fill-{len(files)}")
            files.append(path)
            with open(path, "wb") as fh:
                for _ in range(8):  # 32 MiB files: below a per-file limit, so only a total limit stops it
                    fh.write(chunk)
                    written += len(chunk)
    except OSError as e:
        BLOCKED(f"{target}: stopped after {written // MiB} MiB: {type(e).__name__}: {e}")
    else:
        if written > HOST["disk_mb"] * MiB:
            LEAK(f"{target}: wrote {written // MiB} MiB in {len(files)} files (limit {HOST['disk_mb']} MiB)")
        else:
            BLOCKED(f"{target}: only {written // MiB} MiB before the deadline")
    for path in files:
        try:
            os.remove(path)
        except OSError:
            pass

def squares(n):
    return [i * i for i in range(1, n + 1)]
