"""The demo's WSGI app: a greeting, the request as the app sees it, and a form echo."""

import json
import os


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/environ":
        keys = sorted(k for k in environ if k.isupper() or k.startswith("wsgi."))
        body = json.dumps({k: str(environ[k]) for k in keys}, indent=1).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/echo" and environ["REQUEST_METHOD"] == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        start_response("200 OK", [("Content-Type", environ.get("CONTENT_TYPE", "text/plain"))])
        return [body]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello from liege, worker pid %d\n" % os.getpid()]
