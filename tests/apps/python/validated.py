"""Apps wrapped in wsgiref's validator, with warnings turned into errors: an app that passes
gets a PEP 3333 server, or the call fails."""

import sys
import warnings
from wsgiref.validate import validator

warnings.simplefilter("error")


def _hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def _echo(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))],
    )
    return [body]


def _chunks(environ, start_response):
    """Reads the body 8192 bytes at a time, to the end."""
    inp = environ["wsgi.input"]
    parts = []
    while True:
        part = inp.read(8192)
        if not part:
            break
        parts.append(part)
    body = b"".join(parts)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [body]


def _readline(environ, start_response):
    inp = environ["wsgi.input"]
    lines = []
    while True:
        line = inp.readline()
        if not line:
            break
        lines.append(b"[" + line.rstrip(b"\n") + b"]")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d lines: " % len(lines)] + lines


def _iterate(environ, start_response):
    lines = [line.upper() for line in environ["wsgi.input"]]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return lines


def _stream(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body():
        yield b"one\n"
        yield b""
        yield b"two\n"
        yield b"three\n"

    return body()


def _file(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/x-python")])
    return environ["wsgi.file_wrapper"](open(__file__, "rb"), 64)


def _exc_info(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("boom")
    except ValueError:
        start_response(
            "500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info()
        )
    return [b"failed: boom"]


def _raises(environ, start_response):
    raise RuntimeError("the app failed")


def _empty(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return []


def _head(environ, start_response):
    body = b"head or get"
    start_response(
        "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
    )
    if environ["REQUEST_METHOD"] == "HEAD":
        return []
    return [body]


def _legacy_write(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"first ")
    return [b"second"]


hello = validator(_hello)
echo = validator(_echo)
chunks = validator(_chunks)
readline = validator(_readline)
iterate = validator(_iterate)
stream = validator(_stream)
file = validator(_file)
exc_info = validator(_exc_info)
raises = validator(_raises)
empty = validator(_empty)
head = validator(_head)
legacy_write = validator(_legacy_write)
