"""The demo's view from inside a jail: who the app runs as and what it can see."""

import os
import socket


def _status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return line.split()[1]
    return "?"


def application(environ, start_response):
    lines = [
        "hostname   %s" % socket.gethostname(),
        "uid/gid    %d/%d" % (os.getuid(), os.getgid()),
        "pid/ppid   %d/%d (the master is pid 1)" % (os.getpid(), os.getppid()),
        "processes  %s" % " ".join(sorted(p for p in os.listdir("/proc") if p.isdigit())),
        "/          %s" % " ".join(sorted(os.listdir("/"))),
        "/dev       %s" % " ".join(sorted(os.listdir("/dev"))),
        "/run       %s" % " ".join(sorted(os.listdir("/run"))),
        "cwd        %s" % os.getcwd(),
        "caps       %s  no_new_privs %s  seccomp %s"
        % (_status("CapEff"), _status("NoNewPrivs"), _status("Seccomp")),
    ]
    try:
        open("/usr/liege-demo", "w")
        lines.append("/usr       writable (!)")
    except OSError as e:
        lines.append("/usr       %s" % e.strerror)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("\n".join(lines) + "\n").encode()]
