"""An app that imports `signal` and takes 3 s to load (tests/it/lifecycle.rs stops its instance
while it loads)."""

import signal  # noqa: F401  (imported for its side effect: CPython then catches SIGINT)
import time

time.sleep(3)


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"loaded"]
