# name: net-internet
# threat: the internet (exfiltrating hidden tests, downloading tools, attacking others from the grader's address)
# contained: TCP and UDP to 1.1.1.1:53, a DNS lookup and the cloud metadata address all fail
# outcome: graded
import socket


def tcp(host, port):
    socket.create_connection((host, port), timeout=2).close()
    return "connected"


def udp_dns():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01"
    s.sendto(query, ("1.1.1.1", 53))
    return s.recvfrom(512)


probe("TCP to 1.1.1.1:53", lambda: tcp("1.1.1.1", 53))
probe("UDP DNS query to 1.1.1.1:53", udp_dns)
probe("resolve pypi.org", lambda: socket.getaddrinfo("pypi.org", 443))
probe("cloud metadata 169.254.169.254:80", lambda: tcp("169.254.169.254", 80))

def squares(n):
    return [i * i for i in range(1, n + 1)]
