# Counts the requests a worker runs at once, so a test proves concurrency by what the server saw instead of by
# the wall clock (CI shares two loaded cores). `track(app)` wraps an app; GET /_overlap answers {"peak": N} and
# starts a new count. Works for every worker class (a lock guards the count; cooperative under the async worker).
import json
import threading

_lock = threading.Lock()
_running = 0
_peak = 0


def _report(start_response):
    global _peak
    with _lock:
        body = json.dumps({"peak": _peak}).encode()
        _peak = 0
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _enter():
    global _running, _peak
    with _lock:
        _running += 1
        _peak = max(_peak, _running)


def _leave():
    global _running
    with _lock:
        _running -= 1


class _Counted:
    """The app's iterable; the request stops counting when the server closes it (PEP 3333)."""

    def __init__(self, result):
        self._result = result

    def __iter__(self):
        return iter(self._result)

    def close(self):
        try:
            if hasattr(self._result, "close"):
                self._result.close()
        finally:
            _leave()


def track(app):
    def tracked(environ, start_response):
        if environ.get("PATH_INFO") == "/_overlap":
            return _report(start_response)
        _enter()
        try:
            return _Counted(app(environ, start_response))
        except BaseException:
            _leave()
            raise
    return tracked
