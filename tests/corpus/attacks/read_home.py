# name: read-home
# threat: the teacher's HOME (/root here): SSH keys, cloud credentials, shell history, a canary file
# contained: HOME's files are unreadable by absolute path and by ~; listing /root shows at most the read-only path to the Python installation
# outcome: graded
home = HOST["home"]
probe("read the canary in the teacher's HOME", lambda: read(os.path.join(home, HOST["canary"])))
for rel in (".bash_history", ".ssh/id_rsa", ".aws/credentials", ".config/gcloud/credentials.db", ".kube/config", ".netrc", ".gitconfig"):
    probe(f"read {home}/{rel}", lambda rel=rel: read(os.path.join(home, rel)))
probe("read ~/canary (HOME inside)", lambda: read(os.path.expanduser("~/" + HOST["canary"])))
probe("the canary in uid 0's HOME from /etc/passwd", lambda: read(os.path.join(__import__("pwd").getpwuid(0).pw_dir, HOST["canary"])))
# what the kernel can list under HOME: only directories on the way to its own Python are allowed
allowed = {os.path.dirname(p) for p in (sys.prefix, sys.base_prefix)} | {sys.prefix, sys.base_prefix}
seen = []
for root, dirs, files in os.walk(home):
    if time.monotonic() > DEADLINE:
        break
    if any(root == a or root.startswith(a + os.sep) for a in (sys.prefix, sys.base_prefix)):
        dirs[:] = []
        continue
    seen += [os.path.join(root, f) for f in files]
    if len(seen) > 50:
        break
if seen:
    LEAK(f"files under {home} outside the Python prefix: {seen[:5]}")
else:
    BLOCKED(f"no file under {home} outside the read-only Python prefix")

def squares(n):
    return [i * i for i in range(1, n + 1)]
