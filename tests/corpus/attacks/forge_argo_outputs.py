# name: forge-argo-outputs
# threat: the result Argo uploads from the execute pod: create /var/run/argo/ctr/main/exitcode early (the wait container then uploads at once), plant /var/run/argo/outputs/ (what it uploads), write a file an output parameter pasted into a `when` could be read from (`ran-in` was, before it became a plain value), or the executed notebook ahead of the grader
# contained: no file can be created under /var/run/argo, /gradeflow or at the ran-in path; the notebook is graded from what the grader recorded
# outcome: graded
def write(path, data=b"0"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
    return path


var = "/var/run/argo"
probe("create the main container's exitcode early", lambda: write(f"{var}/ctr/main/exitcode"))
probe("plant an output parameter", lambda: write(f"{var}/outputs/parameters/gradeflow/.never-written", b"x' == 'x"))
probe("plant an output artifact", lambda: write(f"{var}/outputs/artifacts/gradeflow/executed/forged.tgz", b"forged"))
probe("signal the wait container's kill file", lambda: write(f"{var}/ctr/main/signal", b"9"))
probe("write the old ran-in marker", lambda: write("/gradeflow/.never-written", b"x' == 'x"))
probe("write the ran-in marker", lambda: write("/etc/gradeflow/ran-in", b"x' == 'x"))
probe("pre-write executed notebooks", lambda: write("/gradeflow/executed/forge_argo_outputs/squares.ipynb", b"{}"))
probe("replace argoexec", lambda: write(f"{var}/argoexec", b"#!/bin/sh\n"))

def squares(n):
    return [i * i for i in range(1, n + 1)]
