#!/usr/bin/python3
"""Fairness client: N keep-alive HTTP clients for D seconds, counting responses per connection.

wrk reports totals only, and its Lua threads share nothing, so it cannot tell whether a server
served every open connection or left some waiting. This client holds N connections (one
http.client.HTTPConnection per thread) and sends GET requests on each in a loop; a server that
serves only as many connections as it has workers leaves the others at zero. The client itself is
slower than the servers (Python, one GIL), which is fine: what it measures is the share each
connection gets, not the rate.

When the server closes a connection (HTTP/1.0-style servers close after every response, some
without saying so), the client opens a new one in the same slot, sends the request again when
the closed connection had served a response before, and counts it under `reconnects`.

Used by bench/wsgi; also runs alone:
    /usr/bin/python3 bench/fairclient.py http://127.0.0.1:18000/ [clients] [seconds]
which prints the result as JSON.
"""

import http.client
import json
import sys
import threading
import time
import urllib.parse


def _slot(host, port, path, deadline, result):
    conn = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        # No request may block past the deadline by more than a second: a starved connection
        # must not hold the whole run.
        timeout = remaining + 1.0
        reused = conn is not None
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
                conn.connect()
            else:
                conn.sock.settimeout(timeout)
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            if time.monotonic() > deadline:
                break  # finished after the end: counted for nobody
            if 200 <= resp.status < 300:
                result["responses"] += 1
            else:
                result["errors"] += 1
            if resp.will_close:
                conn.close()
                conn = None
                result["reconnects"] += 1
        except TimeoutError:
            # Only a request still unanswered at the deadline times out: not an error, the
            # connection was simply not served (its count shows it).
            result["unanswered"] += 1
            break
        except (ConnectionError, http.client.RemoteDisconnected) as exc:
            if time.monotonic() > deadline:
                break
            conn.close()
            conn = None
            if reused:
                # the server closed a kept-alive connection after its last response without
                # saying so (uWSGI --http-socket answers HTTP/1.1 and closes): what any client
                # does, open a new one and send again; no error
                result["reconnects"] += 1
            else:
                result["errors"] += 1
                result["last_error"] = f"{type(exc).__name__}: {exc}"
                time.sleep(0.01)
        except (OSError, http.client.HTTPException) as exc:
            if time.monotonic() > deadline:
                break
            result["errors"] += 1
            result["last_error"] = f"{type(exc).__name__}: {exc}"
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(0.01)
    if conn is not None:
        conn.close()


def run(url, clients=8, seconds=10.0):
    """Runs `clients` keep-alive clients against `url` for `seconds`; returns a dict with the
    responses per connection and min/max/mean, total, errors, reconnects and `fair` (every
    connection got at least half of a fair share: min >= 0.5 * total / clients)."""
    parts = urllib.parse.urlsplit(url)
    host, port, path = parts.hostname, parts.port or 80, parts.path or "/"
    deadline = time.monotonic() + seconds
    slots = [
        {"responses": 0, "errors": 0, "reconnects": 0, "unanswered": 0}
        for _ in range(clients)
    ]
    threads = [
        threading.Thread(target=_slot, args=(host, port, path, deadline, s), daemon=True)
        for s in slots
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 5.0)
    counts = [s["responses"] for s in slots]
    total = sum(counts)
    mean = total / clients
    out = {
        "clients": clients,
        "seconds": seconds,
        "per_connection": counts,
        "total": total,
        "min": min(counts),
        "max": max(counts),
        "mean": mean,
        "fair": total > 0 and min(counts) >= 0.5 * mean,
        "errors": sum(s["errors"] for s in slots),
        "reconnects": sum(s["reconnects"] for s in slots),
        "unanswered": sum(s["unanswered"] for s in slots),
        "still_running": sum(t.is_alive() for t in threads),
    }
    errs = [s["last_error"] for s in slots if "last_error" in s]
    if errs:
        out["last_error"] = errs[-1]
    return out


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    res = run(
        sys.argv[1],
        int(sys.argv[2]) if len(sys.argv) > 2 else 8,
        float(sys.argv[3]) if len(sys.argv) > 3 else 10.0,
    )
    json.dump(res, sys.stdout, indent=1)
    sys.stdout.write("\n")
