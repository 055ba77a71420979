"""Describes the environ it gets, as JSON: for each key its type name and, for plain values,
its repr; plus what the wsgi.input and wsgi.errors objects can do."""

import json


def application(environ, start_response):
    out = {}
    for key, value in environ.items():
        plain = isinstance(value, (str, bool, tuple, int))
        out[key] = [type(value).__name__, repr(value) if plain else None]
    inp = environ["wsgi.input"]
    err = environ["wsgi.errors"]
    out["@input"] = [n for n in ("read", "readline", "readlines", "__iter__") if hasattr(inp, n)]
    out["@errors"] = [n for n in ("write", "writelines", "flush") if hasattr(err, n)]
    out["@file_wrapper_callable"] = callable(environ["wsgi.file_wrapper"])
    out["@environ_type"] = type(environ).__name__
    body = json.dumps(out, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
