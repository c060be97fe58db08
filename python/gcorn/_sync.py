# Waiting and waking across gcorn's hub greenlets and plain OS threads: the wait queue under gcorn.green's
# primitives and the cooperative Lock the patched threading is built on. Knows nothing of sockets or the stdlib.
import _thread
import time
from collections import deque

import _gcorn

_allocate_os_lock = _thread.allocate_lock  # captured before gcorn.monkey replaces it
_TIMEOUT_MAX = _thread.TIMEOUT_MAX
_monotonic = time.monotonic
_current_token = _gcorn.current_token
_wait_wakeup = _gcorn.wait_wakeup
_wakeup = _gcorn.wakeup


# A waiter is the current job's token (an int) inside a hub greenlet, or an acquired OS lock in any other
# thread: the greenlet parks on the hub, the thread blocks on its lock; either can be woken from anywhere.
def _new_waiter():
    token = _current_token()
    if token:
        return token
    lock = _allocate_os_lock()
    lock.acquire()
    return lock


def _park(waiter, timeout):
    if type(waiter) is int:
        return _wait_wakeup(timeout)
    return waiter.acquire(True, -1 if timeout is None else min(max(timeout, 0), _TIMEOUT_MAX))


def _wake(waiter):
    if type(waiter) is int:
        _wakeup(waiter)
    else:
        try:
            waiter.release()
        except RuntimeError:  # already woken
            pass


class WaitQueue:
    """A FIFO of parked greenlets and threads. A waker pops the waiter it wakes, so two wakes reach two waiters;
    a woken waiter that leaves without what it waited for passes its wake on."""

    __slots__ = ("_q",)

    def __init__(self):
        self._q = deque()

    def __bool__(self):
        return bool(self._q)

    def __len__(self):
        return len(self._q)

    def wake_one(self):
        try:
            waiter = self._q.popleft()
        except IndexError:
            return False
        _wake(waiter)
        return True

    def wake_all(self):
        while self.wake_one():
            pass

    def _leave(self, waiter):
        """Takes `waiter` out of the queue; False if a waker already popped it."""
        try:
            self._q.remove(waiter)
            return True
        except ValueError:
            return False

    def wait_until(self, ready, timeout=None):
        """Parks until ready() (which should also take what it tests for) returns true, or the timeout passes.
        Returns ready()'s last answer."""
        if ready():
            return True
        if timeout is not None and timeout <= 0:
            return False
        deadline = None if timeout is None else _monotonic() + timeout
        waiter = _new_waiter()
        q = self._q
        while True:
            q.append(waiter)
            try:
                if ready():  # a thread may have released between our first test and the append
                    if not self._leave(waiter):
                        self.wake_one()
                    return True
                remaining = None if deadline is None else deadline - _monotonic()
                if remaining is not None and remaining <= 0:
                    if not self._leave(waiter):
                        self.wake_one()
                    return False
                _park(waiter, remaining)
            except BaseException:
                if not self._leave(waiter):
                    self.wake_one()  # do not take a wake meant for someone who can use it with us
                raise
            self._leave(waiter)  # woken, spuriously woken, or timed out
            if ready():
                return True
            if deadline is not None and _monotonic() >= deadline:
                return False
            if type(waiter) is not int:  # a thread's lock is spent once released: take a new one
                waiter = _new_waiter()


def _check_timeout(blocking, timeout):
    """The stdlib's argument rules for Lock.acquire; returns the timeout in seconds or None."""
    if not blocking:
        if timeout != -1:
            raise ValueError("can't specify a timeout for a non-blocking call")
        return 0
    if timeout == -1:
        return None
    if timeout < 0:
        raise ValueError("timeout value must be a non-negative number")
    if timeout > _TIMEOUT_MAX:
        raise OverflowError("timeout value is too large")
    return timeout


class Lock:
    """_thread.lock that parks only the calling greenlet. An OS lock taken without blocking holds the state, so
    greenlets and threads can share it; any of them may release it, as with the stdlib lock."""

    __slots__ = ("_os_lock", "_waiters", "__weakref__")

    def __new__(cls, *args, **kwargs):
        raise TypeError("cannot create '_thread.lock' instances")  # as the stdlib's: allocate_lock() makes them

    @classmethod
    def allocate(cls):
        self = object.__new__(cls)
        self._os_lock = _allocate_os_lock()
        self._waiters = WaitQueue()
        return self

    def acquire(self, blocking=True, timeout=-1):
        if blocking is True and timeout == -1:  # the common call: no arguments to check
            if self._os_lock.acquire(False):
                return True
            return self._waiters.wait_until(self._try_acquire, None)
        timeout = _check_timeout(blocking, timeout)
        if self._os_lock.acquire(False):
            return True
        if timeout == 0:
            return False
        return self._waiters.wait_until(self._try_acquire, timeout)

    def _try_acquire(self):
        return self._os_lock.acquire(False)

    def release(self):
        self._os_lock.release()  # RuntimeError("release unlocked lock"), as the stdlib
        if self._waiters:
            self._waiters.wake_one()

    def locked(self):
        return self._os_lock.locked()

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()

    def _at_fork_reinit(self):
        self._os_lock = _allocate_os_lock()
        self._waiters = WaitQueue()

    acquire_lock = acquire
    release_lock = release
    locked_lock = locked

    def __repr__(self):
        return "<%s %s.%s object at %s>" % ("locked" if self.locked() else "unlocked", type(self).__module__,
                                            type(self).__qualname__, hex(id(self)))


# Named as the stdlib's type, so repr() and messages read the same (type(lock) is still this class).
Lock.__module__, Lock.__name__, Lock.__qualname__ = "_thread", "lock", "lock"
allocate_lock = Lock.allocate
