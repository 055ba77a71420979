"""Per-thread state: threading.local must survive between requests served by one thread."""

import threading

_local = threading.local()


def per_thread_count(environ, start_response):
    _local.count = getattr(_local, "count", 0) + 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d" % _local.count]
