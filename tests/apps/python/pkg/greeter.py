"""Loaded with `module = greeter:entry` from a `pythonpath` folder: shows `env` and `chdir`."""

import os
import threading
import time


def entry(environ, start_response):
    if environ["PATH_INFO"] == "/thread":
        time.sleep(0.3)
        body = str(threading.get_ident()).encode()
    else:
        body = ("%s %s" % (os.environ.get("LIEGE_T_GREETING"), os.getcwd())).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
