# A cooperative socket.socket: the OS socket is always non-blocking; blocking and timeout modes are emulated
# by waiting on the hub (_gcorn.wait_read/wait_write) with the stdlib's exact exceptions (socket.timeout,
# BlockingIOError). Outside a hub greenlet the waits block, so it works there too. Knows nothing of ssl.
import errno
import functools
import io
import os
import socket as _stdlib
import time

import _gcorn

_os_socket = _stdlib.socket
_timeout_error = _stdlib.timeout
_monotonic = time.monotonic
_CONNECT_PENDING = (errno.EINPROGRESS, errno.EALREADY, errno.EAGAIN)
_MSG_DONTWAIT = getattr(_stdlib, "MSG_DONTWAIT", 0)


def _arg(args, i, default=0):
    return args[i] if len(args) > i else default


def threadpooled(fn):
    """Runs a blocking C call (DNS) on the hub's thread pool, parking only the calling greenlet."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if kwargs:
            return _gcorn.run_in_threadpool(functools.partial(fn, *args, **kwargs))
        return _gcorn.run_in_threadpool(fn, *args)
    return wrapper


class socket(_os_socket):
    """socket.socket whose waits yield to gcorn's hub."""

    __slots__ = ("_gcorn_timeout", "_gcorn_waiting")

    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        super().__init__(family, type, proto, fileno)
        # The stdlib's own rules (default timeout, SOCK_NONBLOCK in type) decide the mode we emulate.
        self._gcorn_timeout = super().gettimeout()
        self._gcorn_waiting = None
        super().setblocking(False)

    # ---- modes: recorded here, the OS socket stays non-blocking ----
    def settimeout(self, value):
        super().settimeout(value)  # the stdlib's own argument checks and rounding
        self._gcorn_timeout = super().gettimeout()
        super().setblocking(False)

    def gettimeout(self):
        return self._gcorn_timeout

    def setblocking(self, flag):
        super().setblocking(False)  # keeps the stdlib's error for a bad fd
        self._gcorn_timeout = None if flag else 0.0

    def getblocking(self):
        return self._gcorn_timeout != 0.0

    @property
    def timeout(self):
        return self._gcorn_timeout

    # ---- the one retry loop: try, and on EAGAIN wait for readiness within the timeout ----
    def _deadline(self):
        return None if self._gcorn_timeout is None else _monotonic() + self._gcorn_timeout

    def _wait(self, writable, deadline):
        remaining = None if deadline is None else deadline - _monotonic()
        if remaining is not None and remaining <= 0:
            raise _timeout_error("timed out")
        token = _gcorn.current_token()
        waiting = None
        if token:  # close() from another greenlet wakes us (see _real_close)
            waiting = self._gcorn_waiting
            if waiting is None:
                waiting = self._gcorn_waiting = set()
            waiting.add(token)
        try:
            (_gcorn.wait_write if writable else _gcorn.wait_read)(self.fileno(), remaining)
        except TimeoutError:
            raise _timeout_error("timed out") from None
        finally:
            if waiting is not None:
                waiting.discard(token)

    def _io(self, call, writable, flags, *args, **kwargs):
        deadline = self._deadline()
        while True:
            try:
                return call(*args, **kwargs)
            except BlockingIOError:
                if self._gcorn_timeout == 0.0 or flags & _MSG_DONTWAIT:  # MSG_DONTWAIT: one try, as the stdlib
                    raise
            self._wait(writable, deadline)

    def _real_close(self, *args):
        waiting, self._gcorn_waiting = self._gcorn_waiting, None
        for token in waiting or ():
            try:  # a greenlet parked on this socket would otherwise wait on for its deadline
                _gcorn.throw_later(token, 0, OSError(errno.EBADF, "File descriptor was closed in another greenlet"))
            except RuntimeError:  # closed from a thread other than the hub's: it only waits (on its own dup)
                break
        super()._real_close(*args)

    # Each call takes the stdlib's arguments; `flags` is found where the stdlib takes it.
    def recv(self, bufsize, flags=0):
        return self._io(super().recv, False, flags, bufsize, flags)

    def recv_into(self, buffer, nbytes=0, flags=0):
        return self._io(super().recv_into, False, flags, buffer, nbytes, flags)

    def recvfrom(self, bufsize, flags=0):
        return self._io(super().recvfrom, False, flags, bufsize, flags)

    def recvfrom_into(self, buffer, nbytes=0, flags=0):
        return self._io(super().recvfrom_into, False, flags, buffer, nbytes, flags)

    def recvmsg(self, *args):
        return self._io(super().recvmsg, False, _arg(args, 2), *args)

    def recvmsg_into(self, *args):
        return self._io(super().recvmsg_into, False, _arg(args, 2), *args)

    def send(self, data, flags=0):
        return self._io(super().send, True, flags, data, flags)

    def sendto(self, *args):
        return self._io(super().sendto, True, _arg(args, 1) if len(args) == 3 else 0, *args)

    def sendmsg(self, *args):
        return self._io(super().sendmsg, True, _arg(args, 2), *args)

    if hasattr(_os_socket, "sendmsg_afalg"):
        def sendmsg_afalg(self, *args, **kwargs):
            return self._io(super().sendmsg_afalg, True, kwargs.get("flags", _arg(args, 3)), *args, **kwargs)

    def sendall(self, data, flags=0):
        with memoryview(data) as view, view.cast("B") as bytes_view:
            deadline = self._deadline()  # one timeout for the whole call, as the stdlib
            sent, send = 0, super().send
            while sent < len(bytes_view):
                try:
                    sent += send(bytes_view[sent:], flags)
                    continue
                except BlockingIOError:
                    if self._gcorn_timeout == 0.0 or flags & _MSG_DONTWAIT:
                        raise
                self._wait(True, deadline)

    def _accept(self):
        return self._io(super()._accept, False, 0)

    def connect(self, address):
        err = self._connect(address)
        if err:
            raise OSError(err, os.strerror(err))  # OSError picks the subclass: BlockingIOError, ConnectionRefused...

    def connect_ex(self, address):
        return self._connect(address)

    def _connect(self, address):
        err = super().connect_ex(address)
        if err not in _CONNECT_PENDING or self._gcorn_timeout == 0.0:
            return err
        deadline = self._deadline()
        if err == errno.EAGAIN and self.family == _stdlib.AF_UNIX:
            return self._connect_unix(address, deadline)  # a full listen backlog: only retrying tells
        self._wait(True, deadline)
        return self.getsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_ERROR)

    def _connect_unix(self, address, deadline):
        delay = 0.001
        while True:
            remaining = None if deadline is None else deadline - _monotonic()
            if remaining is not None and remaining <= 0:
                raise _timeout_error("timed out")
            _gcorn.sleep(delay if remaining is None else min(delay, remaining))
            delay = min(delay * 2, 0.05)
            err = super().connect_ex(address)
            if err != errno.EAGAIN:
                return err

    def sendfile(self, file, offset=0, count=None):
        try:
            return self._sendfile_zero_copy(file, offset, count)
        except _stdlib._GiveupOnSendfile:
            return self._sendfile_use_send(file, offset, count)

    def _sendfile_zero_copy(self, file, offset, count):
        """os.sendfile in a loop, as the stdlib's _sendfile_use_sendfile, waiting on the hub instead of a selector."""
        self._check_sendfile_params(file, offset, count)
        try:
            fileno = file.fileno()
            size = os.fstat(fileno).st_size
        except (AttributeError, io.UnsupportedOperation, OSError) as err:
            raise _stdlib._GiveupOnSendfile(err)
        if not size:
            return 0
        if self._gcorn_timeout == 0.0:
            raise ValueError("non-blocking sockets are not supported")
        blocksize = min(count or size, 2 ** 30)
        total = 0
        try:
            while not count or total < count:
                if count:
                    blocksize = min(count - total, blocksize)
                try:
                    sent = os.sendfile(self.fileno(), fileno, offset, blocksize)
                except BlockingIOError:
                    self._wait(True, self._deadline())
                    continue
                except OSError as err:
                    if total == 0:  # e.g. not a regular file: let send() do it
                        raise _stdlib._GiveupOnSendfile(err)
                    raise err from None
                if sent == 0:
                    break
                offset += sent
                total += sent
            return total
        finally:
            if total > 0 and hasattr(file, "seek"):
                file.seek(offset)


socket.__module__ = "socket"  # repr() and error messages read as the stdlib's


DNS_FUNCTIONS = ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo")

