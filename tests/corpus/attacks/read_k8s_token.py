# name: read-k8s-token
# threat: the Kubernetes service-account token of the node or pod running the grader (cluster API access)
# contained: the token file (created on the host by the test) is unreadable, and so is the rest of /var/run/secrets
# outcome: graded
path = HOST["k8s_token"]
probe("read the service-account token", lambda: read(path))
probe("list /var/run/secrets", lambda: os.listdir("/var/run/secrets"))
probe("list /run/secrets", lambda: os.listdir("/run/secrets"))

def squares(n):
    return [i * i for i in range(1, n + 1)]
