# WSGI objects that are simplest in Python: wsgi.input's buffering, wsgi.errors and wsgi.file_wrapper.
# The native server creates them per request; they know nothing of sockets.
import _socket
import io

import _gcorn


class _RawInput(io.RawIOBase):
    """The request body, read through the native reader (which sends 100 Continue when due)."""

    __slots__ = ("_native",)

    def __init__(self, native):
        self._native = native

    def readable(self):
        return True

    def readinto(self, buffer):
        return self._native.readinto(buffer)


def make_input(native):
    """wsgi.input for a request with a body: buffered, with read/readline/readlines/iteration."""
    return io.BufferedReader(_RawInput(native), 65536)


class NoBody:
    """wsgi.input for a request without a body: always at its end. It has no state (nothing to read, nothing to
    close), so one instance serves every such request, where a new io.BytesIO per request cost the server more
    than the rest of the environ. It has the methods PEP 3333 lists and a read-only buffered stream's others
    (registered as an io.BufferedIOBase, so io.TextIOWrapper and isinstance checks take it); it cannot seek."""

    __slots__ = ()

    def read(self, size=-1):
        return b""

    read1 = peek = readline = read

    def readlines(self, hint=-1):
        return []

    def readinto(self, buffer):
        return 0

    readinto1 = readinto

    def readable(self):
        return True

    def seekable(self):
        return False

    writable = isatty = seekable

    def tell(self):
        return 0

    def fileno(self):
        raise io.UnsupportedOperation("wsgi.input has no file descriptor")

    def detach(self):
        raise io.UnsupportedOperation("wsgi.input cannot be detached")

    @property
    def closed(self):
        return False

    def close(self):
        pass

    flush = close

    def __iter__(self):
        return self

    __enter__ = __iter__

    def __exit__(self, *exc):
        pass

    def __next__(self):
        raise StopIteration


io.BufferedIOBase.register(NoBody)
NO_BODY = NoBody()


class ErrorStream:
    """wsgi.errors: lines written here go to gcorn's error log."""

    def __init__(self):
        self._pending = ""

    def write(self, text):
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        lines = (self._pending + text).split("\n")
        self._pending = lines.pop()
        for line in lines:
            _gcorn.log(40, line)
        return len(text)

    def writelines(self, seq):
        for line in seq:
            self.write(line)

    def flush(self):
        if self._pending:
            _gcorn.log(40, self._pending)
            self._pending = ""


class FileWrapper:
    """wsgi.file_wrapper: the server sends regular files with sendfile(2); otherwise this iterates."""

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        return self

    def __next__(self):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration


class _LetGo:
    """Stands in for _socket.socket in socket.socket._real_close(self, _ss=_socket.socket): 'closing' lets go of the
    descriptor instead of closing it."""

    close = _socket.socket.detach


def borrowed_socket_class(cls):
    """The class of environ['gunicorn.socket'] when socket.socket is `cls`: `cls` itself, except that close() lets
    go of the connection's descriptor without closing it (the connection is gcorn's to end). None if `cls` is not
    built on the stdlib's socket.socket (gevent's wrapper): then gcorn hands out a socket over a dup() instead."""
    if not (isinstance(cls, type) and issubclass(cls, _socket.socket) and hasattr(cls, "_real_close")):
        return None

    class socket(cls):
        __slots__ = ()

        def _real_close(self, _ss=_LetGo):
            super()._real_close(_ss)

    socket.__module__, socket.__qualname__ = cls.__module__, cls.__qualname__
    return socket
