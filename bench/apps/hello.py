"""The smallest WSGI app: every request gets 200 and "Hello World!" with a Content-Length.

bench/wsgi serves it with every server it compares (liege, uWSGI, Granian, gunicorn), so what is
measured is the server, not the app. The body is the same as the nginx ceiling's.
"""

BODY = b"Hello World!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
