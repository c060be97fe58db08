# psycopg2's wait callback for gcorn's hub: libpq runs in non-blocking mode and each wait for the server parks
# only the calling greenlet, so Django or SQLAlchemy on PostgreSQL become cooperative. Knows nothing else.
import importlib.machinery
import importlib.util
import sys

import _gcorn


def wait_callback(conn, timeout=None):
    """psycopg2.extensions.set_wait_callback's callback: poll the connection, wait on the hub, repeat."""
    from psycopg2 import OperationalError, extensions
    while True:
        state = conn.poll()
        if state == extensions.POLL_OK:
            return
        if state == extensions.POLL_READ:
            _gcorn.wait_read(conn.fileno(), timeout)
        elif state == extensions.POLL_WRITE:
            _gcorn.wait_write(conn.fileno(), timeout)
        else:
            raise OperationalError("Bad result from poll: %r" % state)


def _install(psycopg2):
    psycopg2.extensions.set_wait_callback(wait_callback)


class _OnImport:
    """A one-shot meta path finder: lets psycopg2 be found as usual, then installs the callback once it has run.
    (Importing psycopg2 up front would cost every worker ~25 ms, needed or not.)"""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "psycopg2":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_install(module):
            exec_module(module)
            _install(module)
        spec.loader.exec_module = exec_then_install
        return spec


def install():
    """Installs the callback now if psycopg2 is loaded, else as soon as it is imported; False if not installed."""
    if "psycopg2" in sys.modules:
        _install(sys.modules["psycopg2"])
        return True
    if importlib.util.find_spec("psycopg2") is None:
        return False
    sys.meta_path.insert(0, _OnImport())
    return True
