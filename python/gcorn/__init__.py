# gcorn's Python side: app loading and WSGI helpers used by the native server (and, later, the cooperative
# standard library). Must not import anything heavy at package import time: every worker imports it.
__all__ = ["__version__"]
__version__ = "0.1.0"
