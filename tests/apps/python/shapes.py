"""Response iterables of several shapes: a tuple, a list of several items, a big list, a
generator calling start_response late."""


def tuple_body(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return (b"a", b"b", b"c")


def several(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"one ", b"", b"two"]


def big_list(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"x" * 600_000, b"y" * 600_000]


def bare_bytes(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return b"raw"


def late_start(environ, start_response):
    def body():
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"late"

    return body()


def make_app():
    """An app factory, for `callable = make_app()`."""
    return tuple_body
