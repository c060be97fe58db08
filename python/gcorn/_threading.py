# Cooperative replacements for _thread/threading under gcorn's async worker: locks that park a greenlet,
# threads started inside a hub greenlet run as greenlets, and an identity per greenlet. Outside a hub greenlet
# (the main greenlet at boot, real threads) everything falls back to real threads and blocking waits.
import _thread
import sys
import threading
import weakref

import greenlet

import _gcorn
from gcorn._sync import Lock

_getcurrent = greenlet.getcurrent
_os_get_ident = _thread.get_ident
_os_start_new_thread = _thread.start_new_thread
_os_set_sentinel = _thread._set_sentinel
_OsDummyThread = threading._DummyThread

# Greenlet -> the sentinel locks threading took for it (Thread.join waits on them); released when it ends.
_green_threads = {}


def get_ident():
    """A greenlet's id inside the hub; a thread's own ident for its main greenlet (the hub, real threads)."""
    g = _getcurrent()
    if g.parent is None:
        return _os_get_ident()
    return id(g)


# The class itself, not a function returning one: code stores it as a class attribute (werkzeug's
# `lock_class = threading.Lock`) and calls self.lock_class(), which a plain function would turn into a method.
allocate_lock = Lock


def start_new_thread(function, args, kwargs=None):
    """In a hub greenlet: runs function(*args, **kwargs) in a new greenlet. Elsewhere: a real thread."""
    if not isinstance(args, tuple):
        raise TypeError("2nd arg must be a tuple")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise TypeError("optional 3rd arg must be a dictionary")
    if not _gcorn.current_token():
        return _os_start_new_thread(function, args, kwargs or {})
    return _gcorn.spawn(_run_thread, function, args, kwargs or {})


def _run_thread(function, args, kwargs):
    g = _getcurrent()
    _green_threads[g] = held = []
    try:
        function(*args, **kwargs)
    except SystemExit:
        pass
    except BaseException as e:
        if not isinstance(e, greenlet.GreenletExit):
            _report_unraisable(e, function)
    finally:
        del _green_threads[g]
        for lock in held:  # what the C runtime does when a thread state dies
            if lock.locked():
                lock.release()


def _report_unraisable(exc, function):
    class _Unraisable:  # the shape sys.unraisablehook expects
        exc_type, exc_value, exc_traceback = type(exc), exc, exc.__traceback__
        err_msg = "Exception ignored in thread started by"
        object = function
    sys.unraisablehook(_Unraisable)


def _set_sentinel():
    held = _green_threads.get(_getcurrent())
    if held is None:
        return _os_set_sentinel()
    lock = Lock()
    held.append(lock)
    return lock


class _DummyThread(_OsDummyThread):
    """threading's stand-in for a thread it did not start; for a greenlet it leaves threading._active with it."""

    def __init__(self):
        super().__init__()
        g = _getcurrent()
        if g.parent is not None:
            weakref.finalize(g, _forget_dummy, self._ident)


def _forget_dummy(ident):
    if isinstance(threading._active.get(ident), _DummyThread):
        threading._active.pop(ident, None)


def patch_threading():
    """Replaces the lock, identity and thread-start functions of _thread and threading; the rest of threading
    (RLock, Condition, Semaphore, Event, Barrier, Timer) is its own Python code on top of them."""
    for module in (_thread, threading):
        module.get_ident = get_ident
    _thread.allocate_lock = allocate_lock
    _thread.allocate = allocate_lock
    _thread.LockType = Lock
    _thread.start_new_thread = _thread.start_new = start_new_thread
    _thread._set_sentinel = _set_sentinel
    _thread.RLock = threading._PyRLock
    threading.Lock = threading._allocate_lock = allocate_lock
    threading._start_new_thread = start_new_thread
    threading._set_sentinel = _set_sentinel
    threading._CRLock = None  # threading.RLock() is then _PyRLock over the cooperative Lock
    threading._DummyThread = _DummyThread
    _patch_logging()


def _patch_logging():
    """logging's module and handler locks were made before the patch: give them cooperative ones."""
    logging = sys.modules.get("logging")
    if logging is None:
        return
    logging._lock = threading.RLock()
    for ref in list(logging._handlerList):
        handler = ref()
        if handler is not None and getattr(handler, "lock", None) is not None:
            handler.lock = threading.RLock()
