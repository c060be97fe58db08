# psycopg2's wait callback for gcorn's hub: libpq runs in non-blocking mode and each wait for the server parks
# only the calling greenlet, so Django or SQLAlchemy on PostgreSQL become cooperative. Knows nothing else.
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


def install():
    """Installs the callback if psycopg2 can be imported; True if it was."""
    try:
        from psycopg2 import extensions
    except ImportError:
        return False
    extensions.set_wait_callback(wait_callback)
    return True
