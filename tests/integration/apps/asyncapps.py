# Test apps for the async worker: sleeping, spinning, streaming, proxying, and request-local state.
import contextvars
import gc
import json
import os
import threading
import time
import urllib.request

import greenlet

import overlap

_current = 0
_peak = 0
_request_var = contextvars.ContextVar("request_var")
_local = threading.local()


def _respond(start_response, body, status="200 OK", ctype="text/plain"):
    if isinstance(body, str):
        body = body.encode()
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def _app(environ, start_response):
    global _current, _peak
    path = environ["PATH_INFO"]
    qs = dict(p.split("=", 1) for p in environ["QUERY_STRING"].split("&") if "=" in p)
    if path == "/sleep":
        _current += 1
        _peak = max(_peak, _current)
        try:
            time.sleep(float(qs.get("s", "0.05")))
        finally:
            _current -= 1
        return _respond(start_response, "slept")
    if path == "/peak":
        return _respond(start_response, str(_peak))
    if path == "/spin":
        while True:  # never yields: the heartbeat stops and the master kills the worker
            pass
    if path == "/pid":
        return _respond(start_response, str(os.getpid()))
    if path == "/isolation":
        # Each request sets its own value, sleeps (other requests run and set theirs), then reads it back.
        mine = qs["v"]
        _request_var.set(mine)
        _local.value = mine
        time.sleep(0.2)
        return _respond(start_response, json.dumps({"contextvar": _request_var.get(None), "local": _local.value}),
                        ctype="application/json")
    if path == "/proxy":
        with urllib.request.urlopen(qs["url"], timeout=10) as r:
            return _respond(start_response, r.read())
    if path == "/greenlets":
        return _respond(start_response, str(sum(isinstance(o, greenlet.greenlet) for o in gc.get_objects())))
    if path == "/stream":
        marker = qs.get("marker")
        return _Stream(marker, int(qs.get("n", "50")), start_response)
    return _respond(start_response, "hello")


class _Stream:
    """A slow streamed body whose close() leaves a mark, to prove close() runs on client disconnect."""

    def __init__(self, marker, n, start_response):
        self.marker, self.n = marker, n
        start_response("200 OK", [("Content-Type", "text/plain")])

    def __iter__(self):
        for i in range(self.n):
            time.sleep(0.05)
            yield b"chunk %d\n" % i

    def close(self):
        if self.marker:
            with open(self.marker, "a") as f:
                f.write("closed\n")


app = overlap.track(_app)  # GET /_overlap: how many requests ran at once
