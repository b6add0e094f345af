# name: net-loopback
# threat: services on the teacher's machine bound to 127.0.0.1 or to an abstract Unix socket (databases, Jupyter, the cloud metadata proxy)
# contained: connecting to the test's TCP server on the host's 127.0.0.1 and to its abstract Unix socket fails; the server saw no connection; the kernel has no interface but lo
# outcome: graded
import socket


def tcp(host, port):
    s = socket.create_connection((host, port), timeout=2)
    s.sendall(HOST["marker"].encode())
    s.close()
    return "connected"


def abstract():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    s.connect("\0" + HOST["abstract"])
    s.sendall(HOST["marker"].encode())
    s.close()
    return "connected"


probe(f"connect to 127.0.0.1:{HOST['port']}", lambda: tcp("127.0.0.1", HOST["port"]))
probe(f"connect to localhost:{HOST['port']}", lambda: tcp("localhost", HOST["port"]))
for ip in HOST["host_ips"]:
    probe(f"connect to the host's {ip}:{HOST['port']}", lambda ip=ip: tcp(ip, HOST["port"]))
probe("connect to the host's abstract Unix socket", abstract)
names = [n for _, n in socket.if_nameindex()]
if set(names) - {"lo"}:
    LEAK(f"network interfaces: {names}")
else:
    BLOCKED(f"network interfaces: {names}")

def squares(n):
    return [i * i for i in range(1, n + 1)]
