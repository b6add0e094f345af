# name: read-env-secrets
# threat: secrets in the grader's environment (cloud keys, tokens) inherited by the kernel
# contained: none of the runner's secret variables is in the kernel's environment or in any process's environ the kernel can read
# outcome: graded
names = HOST["secret_names"]
for name in names:
    if name in os.environ:
        LEAK(f"${name} is in the kernel's environment")
    else:
        BLOCKED(f"${name} is not in the kernel's environment")
print("kernel environment:", sorted(os.environ))
for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            env = fh.read()
    except OSError as e:
        BLOCKED(f"/proc/{pid}/environ: {type(e).__name__}")
        continue
    hits = [n for n in names if n.encode() + b"=" in env]
    if hits:
        LEAK(f"/proc/{pid}/environ has {hits}")
BLOCKED(f"no readable environ holds {names}")

def squares(n):
    return [i * i for i in range(1, n + 1)]
