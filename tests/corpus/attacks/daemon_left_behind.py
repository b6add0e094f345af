# name: daemon-left-behind
# threat: a process that outlives the grading (a miner, a backdoor waiting for the next student's kernel)
# contained: after the run no process carrying the attack's marker exists on the host, although it double-forked, called setsid and ignores SIGHUP/SIGTERM
# outcome: graded
import signal

pid = os.fork()
if pid == 0:
    try:
        os.setsid()
        if os.fork() == 0:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            with open("/tmp/daemon.pid", "w") as fh:
                fh.write(str(os.getpid()))
            # sleep for 5 minutes with the marker in argv[0], so the host can look for it
            os.execv("/bin/sleep", [f"gradeflow-daemon-{HOST['marker']}", "300"])
    finally:
        os._exit(0)
os.waitpid(pid, 0)
time.sleep(0.5)
print("daemon pid inside the sandbox:", open("/tmp/daemon.pid").read())
BLOCKED("daemon started; the test checks that it is gone after the run")

def squares(n):
    return [i * i for i in range(1, n + 1)]
