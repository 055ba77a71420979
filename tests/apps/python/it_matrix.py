"""The integration tests' WSGI app: one route per case of the request matrix, wrapped in
wsgiref.validate.validator with warnings turned into errors, so any PEP 3333 violation by the
server (or by this app) makes the request fail loudly instead of passing."""

import json
import os
import sys
import time
import warnings
from wsgiref.validate import validator

warnings.simplefilter("error")

HERE = os.path.dirname(os.path.abspath(__file__))


def read_body(environ):
    length = environ.get("CONTENT_LENGTH") or "0"
    return environ["wsgi.input"].read(int(length)) if int(length) else b""


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"Hello World"]
    if path == "/echo":
        body = read_body(environ)
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/lines":
        inp = environ["wsgi.input"]
        lines = []
        while True:
            line = inp.readline()
            if not line:
                break
            lines.append(line)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(len(lines)).encode(), b" ", b"|".join(l.rstrip(b"\n") for l in lines)]
    if path.startswith("/path"):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [(path + "?" + environ["QUERY_STRING"]).encode("latin-1")]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def gen():
            for i in range(5):
                yield b"chunk%d;" % i
        return gen()
    if path == "/file":
        start_response("200 OK", [("Content-Type", "text/x-python")])
        f = open(os.path.join(HERE, "it_matrix.py"), "rb")
        return environ["wsgi.file_wrapper"](f, 4096)
    if path == "/raise":
        raise RuntimeError("the app raised on purpose")
    if path == "/exc_info":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("failed after start_response")
        except ValueError:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")],
                           sys.exc_info())
        return [b"handled"]
    if path == "/empty":
        start_response("204 No Content", [])
        return []
    if path == "/sleep":
        time.sleep(float(environ["QUERY_STRING"] or "1"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slept"]
    if path == "/pid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    if path == "/crash":
        os._exit(3)
    if path == "/orphans":
        # Double forks: each grandchild outlives its parent and is re-parented to pid 1 of the
        # pid namespace (the master, under `unshare --pid`), which must reap it.
        for _ in range(int(environ["QUERY_STRING"] or "1")):
            child = os.fork()
            if child == 0:
                if os.fork() == 0:
                    time.sleep(0.2)
                os._exit(0)
            os.waitpid(child, 0)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"forked"]
    if path == "/big":
        body = b"x" * (1 << 20)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body[: 1 << 19], body[1 << 19:]]
    if path == "/environ":
        keys = ["REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE",
                "CONTENT_LENGTH", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL",
                "REMOTE_ADDR", "HTTP_HOST", "HTTP_X_TEST", "wsgi.url_scheme",
                "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"]
        out = {k: environ.get(k) for k in keys}
        out["wsgi.version"] = list(environ["wsgi.version"])
        body = json.dumps(out).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


application = validator(app)
