# name: read-gradebook
# threat: the course's gradebook.db (everyone's grades; writable means forged grades)
# contained: gradebook.db cannot be opened by its absolute path nor by ../-relative paths from the work dir; the file on the host holds no trace of the attack
# outcome: graded
import sqlite3

gb = HOST["gradebook"]
probe("read gradebook.db by absolute path", lambda: read(gb))
for up in range(1, 7):
    rel = "../" * up + "gradebook.db"
    probe(f"read {rel}", lambda rel=rel: read(rel))


def forge():
    con = sqlite3.connect(f"file:{gb}?mode=rw", uri=True)
    con.execute("CREATE TABLE IF NOT EXISTS gradeflow_attack (marker TEXT)")
    con.execute("INSERT INTO gradeflow_attack VALUES (?)", (HOST["marker"],))
    con.commit()
    return "wrote a row"


probe("open gradebook.db read-write with sqlite", forge)

def squares(n):
    return [i * i for i in range(1, n + 1)]
