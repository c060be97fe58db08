"""`gcorn ctl stack PID`: the Python stacks of every thread and every greenlet of this worker, taken from the
worker's inspector thread (src/worker/inspector.cpp) while the worker goes on serving."""
import gc
import sys
import threading
import traceback


def _format(frame):
    return "".join(traceback.format_stack(frame))


def dump(request=""):
    out = []
    names = {t.ident: t.name for t in threading.enumerate()}
    me = threading.get_ident()
    for ident, frame in sys._current_frames().items():
        if ident == me:
            continue  # this inspector thread
        out.append("Thread %s (%s):\n%s" % (ident, names.get(ident, "?"), _format(frame)))
    try:
        from greenlet import greenlet
    except ImportError:
        greenlet = None
    if greenlet is not None:
        parked = [g for g in gc.get_objects() if isinstance(g, greenlet) and not g.dead and g.gr_frame is not None]
        for g in parked:
            out.append("Greenlet %s (%s):\n%s" % (hex(id(g)), type(g).__name__, _format(g.gr_frame)))
    head = "Worker %s%s: %d threads, %d parked greenlets\n" % (
        __import__("os").getpid(), (" serving " + request) if request else "", len(names),
        len(parked) if greenlet is not None else 0)
    return head + "\n".join(out)


def thread_stack(ident):
    """The formatted stack of one thread, or "" if it runs no Python."""
    frame = sys._current_frames().get(ident)
    return _format(frame) if frame is not None else ""


def ignore_signal(signum, frame):
    """The request deadline's interrupt (src/worker/deadlines.cpp): running this is enough for the pending
    RequestTimeout to be raised in the main thread."""
