"""Hello world: the smallest WSGI app, used by the tests and the call benchmark."""


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, World!"]
