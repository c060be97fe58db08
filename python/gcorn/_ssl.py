# A cooperative ssl.SSLSocket over gcorn's cooperative socket. The OS socket is non-blocking, so OpenSSL answers
# "want read/write" instead of blocking; each TLS operation (handshake, read, write, unwrap) then waits on the
# hub within the socket's timeout and retries. Knows nothing of the worker; needs gcorn._socket.
import ssl as _stdlib
import time

from gcorn import _socket

_monotonic = time.monotonic
SSLWantReadError = _stdlib.SSLWantReadError
SSLWantWriteError = _stdlib.SSLWantWriteError


class SSLSocket(_stdlib.SSLSocket, _socket.socket):
    """ssl.SSLSocket whose blocking and timeout modes wait on the hub (the stdlib's own methods do the rest)."""

    def _tls(self, operation, *args, blocking=None):
        """Runs one OpenSSL call until it stops asking to wait. `blocking` overrides the socket's mode."""
        timeout = self.gettimeout()
        if blocking is None and timeout == 0.0:
            return operation(*args)  # non-blocking: SSLWantReadError/WriteError reach the caller, as the stdlib
        deadline = None if timeout is None or timeout == 0.0 else _monotonic() + timeout
        while True:
            try:
                return operation(*args)
            except SSLWantReadError:
                self._wait(False, deadline)
            except SSLWantWriteError:
                self._wait(True, deadline)

    def read(self, len=1024, buffer=None):
        return self._tls(super().read, len, buffer)

    def write(self, data):
        return self._tls(super().write, data)

    def send(self, data, flags=0):
        return self._tls(super().send, data, flags)

    def do_handshake(self, block=False):
        self._check_connected()
        return self._tls(self._sslobj.do_handshake, blocking=True if block else None)

    def unwrap(self):
        if not self._sslobj:
            raise ValueError("No SSL wrapper around " + str(self))
        s = self._tls(self._sslobj.shutdown)
        self._sslobj = None
        return s

    def verify_client_post_handshake(self):
        if not self._sslobj:
            raise ValueError("No SSL wrapper around " + str(self))
        return self._tls(self._sslobj.verify_client_post_handshake)


SSLSocket.__module__ = "ssl"


def patch_ssl():
    """SSLContext.wrap_socket (and so https clients and servers) returns the cooperative SSLSocket."""
    # ssl.SSLSocket itself stays: ssl.py names it in super() calls. Ours is a subclass, so isinstance() holds.
    _stdlib.SSLContext.sslsocket_class = SSLSocket
