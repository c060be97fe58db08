# Gunicorn's --spew for gcorn's workers: a trace function that prints every line of Python executed, with its
# file and line number, to stderr (the error log with capture_output). Knows nothing of the server. Very slow.
import linecache
import sys
import threading


def _spew(frame, event, arg):
    if event == "line":
        name = frame.f_code.co_filename
        line = linecache.getline(name, frame.f_lineno).rstrip()
        sys.stderr.write("%s:%d: %s\n" % (name, frame.f_lineno, line))
    return _spew


def install():
    """Traces this thread and every thread started after (greenlets run on the traced thread)."""
    sys.settrace(_spew)
    threading.settrace(_spew)
