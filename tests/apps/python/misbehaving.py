"""Apps that get WSGI wrong, or fail half-way; `closed` counts the close() calls per app."""

import sys

closed = {}


class Body:
    """A response iterable that yields a first piece, then fails if asked to."""

    def __init__(self, name, fail):
        self.name = name
        self.fail = fail

    def __iter__(self):
        yield b"part one"
        if self.fail:
            raise RuntimeError("iteration failed")
        yield b"part two"

    def close(self):
        closed[self.name] = closed.get(self.name, 0) + 1


def failing_iteration(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Body("failing_iteration", True)


def client_gone(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Body("client_gone", False)


def no_start_response(environ, start_response):
    return [b"who am I"]


def str_body(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["not bytes"]


def bad_header(environ, start_response):
    """Tries bad status and headers; reports the exceptions, then answers properly."""
    seen = []
    tries = [
        (b"200 OK", []),
        ("200 OK", ("X", "y")),
        ("200 OK", [("X", b"y")]),
        ("200 OK", [("X", "y", "z")]),
        ("200 OK", [("X", "\u20ac")]),
        ("OK", []),
        ("200 OK", [("Bad Name", "x")]),
        ("200 OK", [("Connection", "close")]),
    ]
    for status, headers in tries:
        try:
            start_response(status, headers)
            seen.append("accepted")
        except (TypeError, ValueError) as e:
            seen.append(type(e).__name__)
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        start_response("200 OK", [])
        seen.append("accepted")
    except AssertionError as e:
        seen.append(type(e).__name__)
    return [" ".join(seen).encode()]


def late_exc_info(environ, start_response):
    """Sends a piece, then fails and calls start_response with exc_info: it must re-raise."""
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"partial")
    try:
        raise KeyError("late")
    except KeyError:
        start_response("500 Internal Server Error", [], sys.exc_info())
    return [b"never"]


kept = []


def keeps_start_response(environ, start_response):
    kept.append(start_response)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def use_kept():
    try:
        kept[-1]("200 OK", [])
    except RuntimeError as e:
        return str(e)
    return "accepted"


def silent(environ, start_response):
    """Returns an empty body and never calls start_response."""
    return []


def exits(environ, start_response):
    """sys.exit() in a request: an error for this request, not the end of the worker."""
    sys.exit(3)
