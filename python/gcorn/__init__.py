# gcorn's Python side: app loading and WSGI helpers used by the native server, the cooperative standard library
# (gcorn.monkey) and its fan-out API (gcorn.green). Must not import anything heavy at import time: every worker does.
__all__ = ["__version__"]
__version__ = "0.1.0"


class RequestTimeout(BaseException):
    """Raised in a request that outlived its deadline (--request-timeout, or environ["gcorn.deadline"](seconds)):
    at its next wait under the async worker, at its next bytecode under sync and gthread. A BaseException, as
    gevent's Timeout, so `except Exception` in the app does not swallow it. The client gets 504 if no response
    was started."""
