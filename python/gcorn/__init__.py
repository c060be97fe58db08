# gcorn's Python side: app loading and WSGI helpers used by the native server, the cooperative standard library
# (gcorn.monkey) and its fan-out API (gcorn.green). Must not import anything heavy at import time: every worker does.
__all__ = ["__version__"]
__version__ = "0.1.0"
