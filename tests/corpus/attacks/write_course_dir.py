# name: write-course-dir
# threat: the course dir and the system: plant files, change source/ or release/ (next year's assignment), another submission, the run's results
# contained: every write outside the sandbox's /work and /tmp fails or lands in the sandbox's private root only: on the host the course dir is unchanged and none of the planted paths exists
# outcome: graded
course, other, marker = HOST["course"], HOST["other"], HOST["marker"]


def write(path, mode="w"):
    with open(path, mode) as fh:
        fh.write(marker)
    return f"wrote {os.path.realpath(path)}"


for path in (
    f"{course}/planted-{marker}.txt",
    f"{course}/source/ps1/planted-{marker}.txt",
    f"{course}/release/ps1/planted-{marker}.txt",
    f"{course}/submitted/{other}/ps1/planted-{marker}.txt",
    f"{course}/gradeflow_runs/planted-{marker}.txt",
    f"{course}/autograded/planted-{marker}.txt",
):
    probe(f"write {path}", lambda path=path: write(path))
probe("append to the other submission", lambda: write(f"{course}/submitted/{other}/ps1/squares.ipynb", "a"))
probe("replace the release notebook", lambda: write(f"{course}/release/ps1/squares.ipynb"))
# These may succeed inside the sandbox (its root is a private tmpfs); the test checks that none
# of them exists on the host.
for path in ["../" * up + f"planted-{marker}.txt" for up in (1, 3)] + [f"/{d}/planted-{marker}.txt" for d in ("etc", "root", "var", "opt", "usr")]:
    try:
        print("WROTE (sandbox only?):", write(path))
    except OSError as e:
        BLOCKED(f"write {path}: {type(e).__name__}: {e}")

def squares(n):
    return [i * i for i in range(1, n + 1)]
