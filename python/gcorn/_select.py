# Cooperative select.select, select.poll and selectors for gcorn's hub: a call first asks the kernel without
# waiting; if nothing is ready it parks the greenlet until one of its fds is (one wait on a private epoll set),
# then asks again. Outside a hub greenlet the originals run. Knows nothing of sockets or threads.
import math
import operator
import select as _os
import selectors
import time

import _gcorn

_os_select = _os.select
_os_poll = _os.poll
_os_epoll = _os.epoll
_monotonic = time.monotonic
# poll(2) and epoll(7) share these bits on Linux; POLLNVAL has no epoll meaning.
_EPOLL_BITS = (_os.POLLIN | _os.POLLPRI | _os.POLLOUT | _os.POLLERR | _os.POLLHUP | _os.POLLRDNORM | _os.POLLRDBAND
               | _os.POLLWRNORM | _os.POLLWRBAND | _os.POLLMSG | getattr(_os, "POLLRDHUP", 0))
_FOREVER = 86400.0  # a park with no deadline is a loop of these


def _fileno(obj):
    return obj if isinstance(obj, int) else obj.fileno()


def _remaining(deadline):
    return None if deadline is None else max(deadline - _monotonic(), 0.0)


def wait_any(events, timeout):
    """Parks the current greenlet until one of `events` ({fd: poll mask}) is ready or `timeout` seconds pass."""
    if not events:
        _gcorn.sleep(_FOREVER if timeout is None else timeout)
        return
    if len(events) == 1:
        (fd, mask), = events.items()
        if mask in (_os.POLLIN, _os.POLLOUT):  # one fd, one direction: no epoll set needed
            try:
                (_gcorn.wait_read if mask == _os.POLLIN else _gcorn.wait_write)(fd, timeout)
            except TimeoutError:
                pass
            return
    epoll = _os_epoll()
    try:
        for fd, mask in events.items():
            try:
                epoll.register(fd, mask & _EPOLL_BITS)
            except PermissionError:  # a regular file or directory: always ready
                return
            except OSError:  # a negative or closed fd: poll would report it, select has refused it already
                continue
        _gcorn.wait_read(epoll.fileno(), timeout)
    except TimeoutError:
        pass
    finally:
        epoll.close()


def select(rlist, wlist, xlist, timeout=None):
    """select.select that parks only the calling greenlet."""
    rlist, wlist, xlist = (objs if isinstance(objs, (list, tuple)) else list(objs) for objs in (rlist, wlist, xlist))
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout < 0):
        return _os_select(rlist, wlist, xlist, timeout)  # raises the stdlib's TypeError or ValueError
    ready = _os_select(rlist, wlist, xlist, 0)  # the lists as given: fileno() side effects as the stdlib's
    if ready[0] or ready[1] or ready[2] or timeout == 0:
        return ready
    if not _gcorn.current_token():
        return _os_select(rlist, wlist, xlist, timeout)
    events = {}
    for objs, bit in ((rlist, _os.POLLIN), (wlist, _os.POLLOUT), (xlist, _os.POLLPRI)):
        for obj in objs:
            fd = _fileno(obj)
            events[fd] = events.get(fd, 0) | bit
    deadline = None if timeout is None else _monotonic() + timeout
    while True:
        wait_any(events, _remaining(deadline))
        ready = _os_select(rlist, wlist, xlist, 0)
        if ready[0] or ready[1] or ready[2] or (deadline is not None and _monotonic() >= deadline):
            return ready


def _poll_timeout(timeout):
    """poll()'s milliseconds (None or negative: forever) as seconds or None, with the stdlib's argument errors."""
    if timeout is None:
        return None
    if isinstance(timeout, float):
        if timeout != timeout:
            raise ValueError("Invalid value NaN (not a number)")
        ms = math.ceil(timeout) if timeout >= 0 else math.floor(timeout)  # away from zero, as the stdlib
    else:
        try:
            ms = operator.index(timeout)
        except TypeError:
            raise TypeError("timeout must be an integer or None") from None
    if not -2 ** 31 <= ms < 2 ** 31:  # the C int poll(2) takes
        raise OverflowError("timeout is too large")
    return None if ms < 0 else ms / 1000.0


class _Poll:
    """The object select.poll() returns: its poll() parks only the calling greenlet."""

    def __new__(cls, *args, **kwargs):
        raise TypeError("cannot create 'select.poll' instances")  # as the stdlib's type

    @classmethod
    def _create(cls):
        self = object.__new__(cls)
        self._poll = _os_poll()
        self._events = {}
        self._polling = False
        return self

    def register(self, fd, eventmask=_os.POLLIN | _os.POLLPRI | _os.POLLOUT):
        self._poll.register(fd, eventmask)
        self._events[_fileno(fd)] = eventmask

    def modify(self, fd, eventmask):
        self._poll.modify(fd, eventmask)
        self._events[_fileno(fd)] = eventmask

    def unregister(self, fd):
        self._poll.unregister(fd)
        del self._events[_fileno(fd)]

    def poll(self, timeout=None):
        seconds = _poll_timeout(timeout)
        if self._polling:
            raise RuntimeError("concurrent poll() invocation")  # as the stdlib's
        ready = self._poll.poll(0)
        if ready or seconds == 0:
            return ready
        if not _gcorn.current_token():
            return self._poll.poll(timeout)
        self._polling = True
        try:
            deadline = None if seconds is None else _monotonic() + seconds
            while True:
                wait_any(dict(self._events), _remaining(deadline))
                ready = self._poll.poll(0)
                if ready or (deadline is not None and _monotonic() >= deadline):
                    return ready
        finally:
            self._polling = False


_Poll.__module__, _Poll.__name__, _Poll.__qualname__ = "select", "poll", "poll"


def poll():
    """select.poll() whose poll() parks only the calling greenlet."""
    return _Poll._create()


def patch_select():
    """select.select/poll cooperative; epoll, devpoll and kqueue withdrawn so libraries pick these."""
    _os.select = select
    _os.poll = poll
    for name in ("epoll", "devpoll", "kqueue", "kevent"):
        if hasattr(_os, name):
            delattr(_os, name)


def patch_selectors():
    """selectors.DefaultSelector is the PollSelector over the cooperative poll."""
    selectors.PollSelector._selector_cls = staticmethod(poll)
    selectors.SelectSelector._select = staticmethod(select)
    selectors.DefaultSelector = selectors.PollSelector
    for name in ("EpollSelector", "DevpollSelector", "KqueueSelector"):
        if hasattr(selectors, name):
            delattr(selectors, name)
