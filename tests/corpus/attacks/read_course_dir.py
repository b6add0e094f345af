# name: read-course-dir
# threat: the course dir: nbgrader_config.py, source/ (hidden tests and solutions of this and later assignments), release/
# contained: no file of the course dir is readable, by absolute or relative path
# outcome: graded
course = HOST["course"]
probe("read nbgrader_config.py", lambda: read(f"{course}/nbgrader_config.py"))
probe("read source/ps1/squares.ipynb (solutions + hidden tests)", lambda: read(f"{course}/source/ps1/squares.ipynb"))
probe("list source/ (later assignments)", lambda: os.listdir(f"{course}/source"))
for up in range(1, 7):
    rel = "../" * up + "source/ps1/squares.ipynb"
    probe(f"read {rel}", lambda rel=rel: read(rel))

def squares(n):
    return [i * i for i in range(1, n + 1)]
