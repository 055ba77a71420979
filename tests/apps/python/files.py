"""wsgi.file_wrapper over a real file (sent with sendfile), over a file already partly read, and
over an object without a descriptor (iterated)."""

import io

opened = []


def sendfile(environ, start_response):
    f = open(__file__, "rb")
    opened.append(f)
    start_response("200 OK", [("Content-Type", "text/x-python")])
    return environ["wsgi.file_wrapper"](f)


def seeked(environ, start_response):
    f = open(environ["FILE_PATH"], "rb")
    f.read(3)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return environ["wsgi.file_wrapper"](f)


def no_descriptor(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return environ["wsgi.file_wrapper"](io.BytesIO(b"abcdefghij"), 4)
