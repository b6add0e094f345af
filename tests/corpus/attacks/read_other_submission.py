# name: read-other-submission
# threat: another student's submission (copying their answers)
# contained: the other student's notebook is unreadable by absolute and relative paths, and no other student's work dir (on the host's /tmp) is visible
# outcome: graded
import glob

other, course = HOST["other"], HOST["course"]
probe("read the other submission by absolute path", lambda: read(f"{course}/submitted/{other}/ps1/squares.ipynb"))
for rel in (f"../{other}/squares.ipynb", f"../../{other}/ps1/squares.ipynb", f"../../submitted/{other}/ps1/squares.ipynb", f"../../../submitted/{other}/ps1/squares.ipynb"):
    probe(f"read {rel}", lambda rel=rel: read(rel))
probe("list the course's submitted/", lambda: os.listdir(f"{course}/submitted"))
own = os.path.realpath(os.getcwd())  # in a pod the kernel's own work dir is under /tmp: that one is not another's
found = [p for p in glob.glob("/tmp/**/*.ipynb", recursive=True) + glob.glob("/tmp/gradeflow-execute-*/work/*") if not os.path.realpath(p).startswith(own + os.sep)]
if found:
    LEAK(f"other work dirs in /tmp: {found[:5]}")
else:
    BLOCKED("no notebook and no other work dir under /tmp")

def squares(n):
    return [i * i for i in range(1, n + 1)]
