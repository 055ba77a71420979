"""Test-only WSGI app for the emperor's isolation and limit tests: it runs the shell command
the test sends and answers with its output. Never deploy it: it is a remote shell by design.

GET  /          -> "ok"
GET  /pid       -> the worker's pid
GET  /print     -> prints a line to stdout and stderr (the vassal's log), answers "printed"
GET  /info      -> JSON: pid, ppid, uid, gid, hostname of the worker
POST /run       -> runs the body with /bin/sh -c (60 s at most); answers
                   "<exit status>\n<stdout and stderr>"
"""

import json
import os
import socket
import subprocess
import sys


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/print":
        print("a line from the app", flush=True)
        print("an error line from the app", file=sys.stderr, flush=True)
        body = b"printed"
    elif path == "/pid":
        body = str(os.getpid()).encode()
    elif path == "/info":
        body = json.dumps(
            {
                "pid": os.getpid(),
                "ppid": os.getppid(),
                "uid": os.getuid(),
                "gid": os.getgid(),
                "hostname": socket.gethostname(),
            }
        ).encode()
    elif path == "/run" and environ["REQUEST_METHOD"] == "POST":
        size = int(environ.get("CONTENT_LENGTH") or 0)
        command = environ["wsgi.input"].read(size).decode()
        try:
            done = subprocess.run(
                ["/bin/sh", "-c", command],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=60,
            )
            body = b"%d\n" % done.returncode + done.stdout
        except Exception as e:  # fork refused by the pids limit, out of memory...
            body = ("error\n%s: %s" % (type(e).__name__, e)).encode()
    else:
        body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
