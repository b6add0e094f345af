# name: read-pod-workspace
# threat: the hidden tests in the Argo execute pod: /gradeflow/snapshot.json and /gradeflow/restored/<student>/work/*.ipynb, downloaded there for the grader, and the grader's own open files and environment under /proc
# contained: nothing under /gradeflow is readable or listable, nor the grader's /proc/PID/environ, maps or open files (Landlock in the pod; not mounted at all in bubblewrap and podman)
# outcome: graded
import glob

probe("read /gradeflow/snapshot.json (hidden tests)", lambda: read("/gradeflow/snapshot.json"))
probe("list /gradeflow", lambda: os.listdir("/gradeflow"))


def found(pattern):
    hits = glob.glob(pattern)
    if not hits:
        raise FileNotFoundError(f"nothing matches {pattern}")
    return [read(h)[:80] for h in hits]


probe("read the restored notebooks", lambda: found("/gradeflow/restored/*/work/*.ipynb"))
for up in range(1, 7):
    probe(f"read {'../' * up}snapshot.json", lambda up=up: read("../" * up + "snapshot.json"))
ppid = os.getppid()
for what in ("environ", "maps", "mem"):
    probe(f"read the parent's /proc/{ppid}/{what}", lambda what=what: read(f"/proc/{ppid}/{what}"))


def open_files(pid):
    got = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        if target.endswith((".ipynb", ".json")):
            got.append((target, read(f"/proc/{pid}/fd/{fd}")[:40]))
    if not got:
        raise PermissionError("no notebook or JSON file of the parent could be read")
    return got


probe("read the parent's open notebooks through /proc/PID/fd", lambda: open_files(ppid))

def squares(n):
    return [i * i for i in range(1, n + 1)]
