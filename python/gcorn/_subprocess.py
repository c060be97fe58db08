# Cooperative subprocess for gcorn's hub: Popen's pipes wait on the hub before each read or write, and waiting for
# a child (Popen.wait, os.waitpid) parks the greenlet on a pidfd. Knows nothing of sockets, threads or the worker.
import io
import os
import subprocess

import _gcorn

_os_waitpid = os.waitpid
_PIPE_BUF = 4096  # a write this small to a writable pipe does not block (pipe(7))


class GreenPipe(io.RawIOBase):
    """The parent's end of a pipe: each read or write first waits on the hub for the fd to be ready. The fd stays
    blocking (a child may inherit it); the wait only makes sure the read or write will not block."""

    def __init__(self, fd, mode):
        super().__init__()
        self._fd, self._reading = fd, "r" in mode

    def fileno(self):
        self._checkClosed()
        return self._fd

    def readable(self):
        return self._reading

    def writable(self):
        return not self._reading

    def readinto(self, buffer):
        self._checkClosed()
        _gcorn.wait_read(self._fd)
        return os.readv(self._fd, [buffer])

    def write(self, data):
        self._checkClosed()
        with memoryview(data) as view:
            _gcorn.wait_write(self._fd)
            return os.write(self._fd, view[:_PIPE_BUF])

    def close(self):
        if not self.closed:
            try:
                os.close(self._fd)
            finally:
                super().close()


def _green_file(f, bufsize):
    """The same pipe as `f` (opened by Popen), rebuilt over a GreenPipe with the same buffering and text layer."""
    if f is None:
        return None
    text = f if isinstance(f, io.TextIOWrapper) else None
    binary = text.buffer if text else f
    reading = binary.readable()
    raw = GreenPipe(os.dup(binary.fileno()), "r" if reading else "w")
    green = raw
    if not isinstance(binary, io.RawIOBase):
        size = bufsize if bufsize is not None and bufsize > 1 else io.DEFAULT_BUFFER_SIZE  # as Popen's io.open
        green = io.BufferedReader(raw, size) if reading else io.BufferedWriter(raw, size)
    if text:
        green = io.TextIOWrapper(green, encoding=text.encoding, errors=text.errors,
                                 line_buffering=text.line_buffering, write_through=text.write_through)
    f.close()
    return green


def wait_exit(pid, timeout):
    """Parks until child `pid` has exited (without reaping it) or `timeout` passes; False if no pidfd is to be had."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # an old kernel, or not (or no longer) our child: the caller decides
        return False
    try:
        _gcorn.wait_read(fd, timeout)
    except TimeoutError:
        pass
    finally:
        os.close(fd)
    return True


def waitpid(pid, options):
    """os.waitpid that parks only the calling greenlet."""
    if options & os.WNOHANG or not _gcorn.current_token():
        return _os_waitpid(pid, options)
    if pid > 0 and not options & (os.WUNTRACED | os.WCONTINUED) and wait_exit(pid, None):
        return _os_waitpid(pid, options)
    delay = 0.001  # waiting for any child, or for a stop: poll, backing off
    while True:
        result = _os_waitpid(pid, options | os.WNOHANG)
        if result[0]:
            return result
        _gcorn.sleep(delay)
        delay = min(delay * 2, 0.05)


def wait():
    return waitpid(-1, 0)


class Popen(subprocess.Popen):
    """subprocess.Popen whose pipes and waits are cooperative inside a hub greenlet."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        bufsize = kwargs.get("bufsize", args[1] if len(args) > 1 else -1)
        self.stdin, self.stdout, self.stderr = (_green_file(f, bufsize) for f in (self.stdin, self.stdout, self.stderr))

    def _wait(self, timeout):
        if timeout is None or self.returncode is not None or not _gcorn.current_token():
            return super()._wait(timeout)
        # The stdlib polls with sleeps for a timed wait; a pidfd says at once when the child exits.
        start = subprocess._time()
        wait_exit(self.pid, timeout)
        try:
            return super()._wait(max(timeout - (subprocess._time() - start), 0))
        except subprocess.TimeoutExpired:
            raise subprocess.TimeoutExpired(self.args, timeout) from None


def patch_subprocess():
    os.waitpid = waitpid
    os.wait = wait
    subprocess.Popen = Popen
