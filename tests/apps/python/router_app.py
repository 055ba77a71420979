"""The router tests' app (tests/it/router): which vassal answered, what the router told it,
request bodies as it got them, and slow streams.

GET  /              -> the environment variable WHO (the vassal's `env = WHO=...`), else "-"
GET  /env           -> JSON: WHO, and every CGI variable and HTTP_* header it got (str values)
POST /echo          -> JSON: WHO, CONTENT_LENGTH, the body's length and sha256, HTTP_TRANSFER_ENCODING
GET  /stream?n=N&ms=MS -> N lines `line I`, one every MS milliseconds, with no length (streamed)
GET  /pid           -> the worker's pid (in its own pid namespace under an emperor)
"""

import hashlib
import json
import os
import time


def who():
    return os.environ.get("WHO", "-")


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/env":
        out = {k: v for k, v in environ.items() if isinstance(v, str)}
        out["@who"] = who()
        body = json.dumps(out, sort_keys=True).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/echo":
        length = environ.get("CONTENT_LENGTH") or ""
        inp = environ["wsgi.input"]
        data = inp.read(int(length)) if length else inp.read()
        body = json.dumps(
            {
                "who": who(),
                "content_length": length,
                "length": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "transfer_encoding": environ.get("HTTP_TRANSFER_ENCODING"),
            },
            sort_keys=True,
        ).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/pid":
        body = str(os.getpid()).encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]
    if path == "/stream":
        query = dict(p.split("=", 1) for p in environ.get("QUERY_STRING", "").split("&") if "=" in p)
        n = int(query.get("n", "5"))
        ms = int(query.get("ms", "100"))
        start_response("200 OK", [("Content-Type", "text/plain")])

        def lines():
            for i in range(n):
                yield b"line %d\n" % i
                time.sleep(ms / 1000.0)

        return lines()
    body = who().encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
