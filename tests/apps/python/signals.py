"""An app that imports `signal` when it loads, as many libraries do: CPython's `signal` module
then catches SIGINT (tests/it/lifecycle.rs checks the worker still ends on it)."""

import signal  # noqa: F401  (imported for its side effect)


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"signals"]
