# Cooperative _thread/threading for gcorn's async worker: greenlet-parking locks, threads started in a hub greenlet
# run as greenlets (real threads elsewhere), an identity per greenlet. Knows nothing of sockets or the worker.
import _thread
import sys
import threading
import weakref

import greenlet

import _gcorn
from gcorn._sync import Lock, allocate_lock

_getcurrent = greenlet.getcurrent
_os_get_ident = _thread.get_ident
_os_start_new_thread = _thread.start_new_thread
_os_set_sentinel = _thread._set_sentinel
_os_count = _thread._count
_OsDummyThread = threading._DummyThread
_os_excepthook = threading.excepthook



class _GreenThread:
    """A thread start_new_thread runs as a greenlet: its ident (the job's token, known before it starts, as the
    stdlib's return value) and the sentinel locks threading took for it (Thread.join waits on them)."""
    __slots__ = ("ident", "sentinels")

    def __init__(self, ident):
        self.ident, self.sentinels = ident, []


_green_threads = {}  # greenlet -> _GreenThread, while it runs one


def get_ident():
    """For a greenlet: its thread's ident if start_new_thread started it, else its id(); for a thread's main
    greenlet (the hub, real threads): the OS thread's ident."""
    g = _getcurrent()
    if g.parent is None:
        return _os_get_ident()
    thread = _green_threads.get(g)
    return thread.ident if thread is not None else id(g)


# allocate_lock (from gcorn._sync) is a bound classmethod, not a function: code stores threading.Lock as a class
# attribute (werkzeug's `lock_class = threading.Lock`) and calls self.lock_class(), which would bind a function.


def start_new_thread(function, args, kwargs=None):
    """In a hub greenlet: runs function(*args, **kwargs) in a new greenlet. Elsewhere: a real thread."""
    if not isinstance(args, tuple):
        raise TypeError("2nd arg must be a tuple")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise TypeError("optional 3rd arg must be a dictionary")
    if not _gcorn.current_token():
        return _os_start_new_thread(function, args, kwargs or {})
    thread = _GreenThread(0)
    thread.ident = _gcorn.spawn(_run_thread, thread, function, args, kwargs or {})
    return thread.ident


def _run_thread(thread, function, args, kwargs):
    g = _getcurrent()
    _green_threads[g] = thread
    try:
        function(*args, **kwargs)
    except SystemExit:
        pass
    except BaseException as e:
        if not isinstance(e, greenlet.GreenletExit):
            _report_unraisable(e, function)
    finally:
        del _green_threads[g]
        for lock in thread.sentinels:  # what the C runtime does when a thread state dies
            if lock.locked():
                lock.release()


def _report_unraisable(exc, function):
    class _Unraisable:  # the shape sys.unraisablehook expects
        exc_type, exc_value, exc_traceback = type(exc), exc, exc.__traceback__
        err_msg = "Exception ignored in thread started by"
        object = function
    sys.unraisablehook(_Unraisable)


def _set_sentinel():
    thread = _green_threads.get(_getcurrent())
    if thread is None:
        return _os_set_sentinel()
    lock = allocate_lock()
    thread.sentinels.append(lock)
    return lock


class _DummyThread(_OsDummyThread):
    """threading's stand-in for a thread it did not start; for a greenlet it leaves threading._active with it."""

    def __init__(self):
        super().__init__()
        g = _getcurrent()
        if g.parent is not None:
            weakref.finalize(g, _forget_dummy, self._ident)


def _count():
    """_thread._count(): the threads alive, greenlet ones included (threading_helper waits for it to drop)."""
    return _os_count() + len(_green_threads)


def excepthook(args):
    """threading.excepthook, quiet about GreenletExit: a thread killed as its worker stops did nothing wrong."""
    if args.exc_type is not None and issubclass(args.exc_type, greenlet.GreenletExit):
        return
    _os_excepthook(args)


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
    _thread._count = _count
    _thread.RLock = threading._PyRLock
    threading.Lock = threading._allocate_lock = allocate_lock
    threading._start_new_thread = start_new_thread
    threading._set_sentinel = _set_sentinel
    threading._CRLock = None  # threading.RLock() is then _PyRLock over the cooperative Lock
    threading._DummyThread = _DummyThread
    threading.excepthook = excepthook
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
