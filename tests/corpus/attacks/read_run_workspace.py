# name: read-run-workspace
# threat: the run's workspace (course/gradeflow_runs/<run>/): snapshot.json holds the hidden tests, restored/ and executed/ hold every other student's notebooks
# contained: nothing under gradeflow_runs/ is visible, by absolute or relative path
# outcome: graded
import glob

runs = HOST["runs"]
probe("list gradeflow_runs/", lambda: os.listdir(runs))


def found(pattern):
    hits = glob.glob(pattern)
    if not hits:
        raise FileNotFoundError(f"nothing matches {pattern}")
    return hits


probe("glob the snapshot (hidden tests)", lambda: found(f"{runs}/*/snapshot.json"))
probe("glob other students' restored notebooks", lambda: found(f"{runs}/*/restored/*/work/*.ipynb"))
probe("glob other students' executed notebooks", lambda: found(f"{runs}/*/executed/*/*.ipynb"))
for up in range(1, 7):
    rel = "../" * up + "gradeflow_runs"
    probe(f"list {rel}", lambda rel=rel: os.listdir(rel))

def squares(n):
    return [i * i for i in range(1, n + 1)]
