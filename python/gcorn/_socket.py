# A cooperative socket.socket: the OS socket is always non-blocking; blocking and timeout modes are
# emulated by waiting on the hub (_gcorn.wait_read/wait_write), with the stdlib's exact exceptions
# (socket.timeout, BlockingIOError). Outside a hub greenlet the waits block, so it also works there.
import errno
import functools
import os
import socket as _stdlib
import time

import _gcorn

_orig_socket = _stdlib.socket
_timeout_error = _stdlib.timeout


def threadpooled(fn):
    """Runs a blocking C call (DNS) on the hub's thread pool, parking only the calling greenlet."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if kwargs:
            return _gcorn.run_in_threadpool(functools.partial(fn, *args, **kwargs))
        return _gcorn.run_in_threadpool(fn, *args)
    return wrapper


class socket(_orig_socket):
    """socket.socket whose waits yield to gcorn's hub."""

    __slots__ = ("_gcorn_timeout",)

    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        super().__init__(family, type, proto, fileno)
        self._gcorn_timeout = _stdlib.getdefaulttimeout()
        if fileno is not None:
            try:
                self._gcorn_timeout = None if super().getblocking() else 0.0
            except OSError:
                pass
        super().setblocking(False)

    # ---- modes: recorded here, the OS socket stays non-blocking ----
    def settimeout(self, value):
        if value is not None:
            value = float(value)
            if value < 0:
                raise ValueError("Timeout value out of range")
        self._gcorn_timeout = value

    def gettimeout(self):
        return self._gcorn_timeout

    def setblocking(self, flag):
        self._gcorn_timeout = None if flag else 0.0

    def getblocking(self):
        return self._gcorn_timeout != 0.0

    @property
    def timeout(self):
        return self._gcorn_timeout

    # ---- the one retry loop: try, and on EAGAIN wait for readiness within the timeout ----
    def _deadline(self):
        return None if self._gcorn_timeout is None else time.monotonic() + self._gcorn_timeout

    def _wait(self, writable, deadline):
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise _timeout_error("timed out")
        try:
            (_gcorn.wait_write if writable else _gcorn.wait_read)(self.fileno(), remaining)
        except TimeoutError:
            raise _timeout_error("timed out") from None

    def _io(self, call, writable, *args, deadline=None):
        deadline = deadline or self._deadline()
        while True:
            try:
                return call(*args)
            except (BlockingIOError, InterruptedError):
                if self._gcorn_timeout == 0.0:
                    raise
            self._wait(writable, deadline)

    def recv(self, *args):
        return self._io(super().recv, False, *args)

    def recv_into(self, *args):
        return self._io(super().recv_into, False, *args)

    def recvfrom(self, *args):
        return self._io(super().recvfrom, False, *args)

    def recvfrom_into(self, *args):
        return self._io(super().recvfrom_into, False, *args)

    def recvmsg(self, *args):
        return self._io(super().recvmsg, False, *args)

    def send(self, *args):
        return self._io(super().send, True, *args)

    def sendto(self, *args):
        return self._io(super().sendto, True, *args)

    def sendmsg(self, *args):
        return self._io(super().sendmsg, True, *args)

    def sendall(self, data, flags=0):
        view = memoryview(data).cast("B")
        deadline = self._deadline()  # one timeout for the whole call, as the stdlib does
        sent = 0
        while sent < len(view):
            sent += self._io(_orig_socket.send, True, self, view[sent:], flags, deadline=deadline)

    def _accept(self):
        return self._io(super()._accept, False)

    def accept(self):
        fd, addr = self._accept()
        sock = socket(self.family, self.type, self.proto, fileno=fd)
        if _stdlib.getdefaulttimeout() is None and self.gettimeout():
            sock.setblocking(True)
        return sock, addr

    def connect(self, address):
        err = self.connect_ex(address)
        if err:
            if err == errno.ETIMEDOUT and self._gcorn_timeout is not None:
                raise _timeout_error("timed out")
            raise OSError(err, os.strerror(err))

    def connect_ex(self, address):
        err = super().connect_ex(address)
        if err not in (errno.EINPROGRESS, errno.EAGAIN, errno.EALREADY):
            return err
        if self._gcorn_timeout == 0.0:
            return err
        try:
            _gcorn.wait_write(self.fileno(), self._gcorn_timeout)
        except TimeoutError:
            if self._gcorn_timeout is not None:
                raise _timeout_error("timed out") from None
            raise
        return self.getsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_ERROR)

    def sendfile(self, file, offset=0, count=None):
        return self._sendfile_use_send(file, offset, count)

    def dup(self):
        sock = socket(self.family, self.type, self.proto, fileno=os.dup(self.fileno()))
        sock.settimeout(self.gettimeout())
        return sock


def socketpair(family=_stdlib.AF_UNIX, type=_stdlib.SOCK_STREAM, proto=0):
    a, b = _stdlib._socket.socketpair(family, type, proto)
    return socket(family, type, proto, a.detach()), socket(family, type, proto, b.detach())


def fromfd(fd, family, type, proto=0):
    return socket(family, type, proto, os.dup(fd))
