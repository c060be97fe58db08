# gcorn.green: a small public API to fan out work inside a request under gcorn's async worker: greenlets, events,
# results, queues, semaphores, timeouts and pools on the hub's primitives. Needs no monkey patching; must not
# import the app or the patched modules. Waits block only the calling greenlet (a plain thread just blocks).
import queue as _queue
import time
import traceback
from collections import deque

import greenlet as _greenlet

import _gcorn
from gcorn._sync import WaitQueue, _allocate_os_lock as _os_lock

__all__ = ["spawn", "spawn_later", "joinall", "sleep", "Greenlet", "GreenletExit", "Event", "AsyncResult", "Queue",
           "Empty", "Full", "Semaphore", "BoundedSemaphore", "Timeout", "Pool", "wait_read", "wait_write"]

GreenletExit = _greenlet.GreenletExit
Empty = _queue.Empty
Full = _queue.Full
_monotonic = time.monotonic


def _deadline(timeout):
    return None if timeout is None else _monotonic() + timeout


def _remaining(deadline):
    return None if deadline is None else max(deadline - _monotonic(), 0.0)


def sleep(seconds=0):
    """Parks the calling greenlet for `seconds`; sleep(0) lets every other ready greenlet run first."""
    _gcorn.sleep(seconds)


def wait_read(fd, timeout=None):
    """Parks until `fd` (an int or an object with fileno()) is readable; TimeoutError after `timeout` seconds."""
    _gcorn.wait_read(fd if isinstance(fd, int) else fd.fileno(), timeout)


def wait_write(fd, timeout=None):
    """Parks until `fd` is writable; TimeoutError after `timeout` seconds."""
    _gcorn.wait_write(fd if isinstance(fd, int) else fd.fileno(), timeout)


class Event:
    """A flag greenlets wait for: set() wakes every waiter, clear() resets it."""

    def __init__(self):
        self._flag = False
        self._generation = 0  # a waiter woken by set() returns True even if clear() came right after
        self._waiters = WaitQueue()

    def is_set(self):
        return self._flag

    isSet = ready = is_set

    def set(self):
        self._flag = True
        self._generation += 1
        self._waiters.wake_all()

    def clear(self):
        self._flag = False

    def wait(self, timeout=None):
        """True once set (at once if it is), False if `timeout` seconds pass first."""
        if self._flag:
            return True
        generation = self._generation
        return self._waiters.wait_until(lambda: self._flag or self._generation != generation, timeout)

    def _at_fork_reinit(self):
        self._waiters = WaitQueue()


class AsyncResult:
    """A value (or exception) delivered once, by one greenlet, to any number of waiters."""

    def __init__(self):
        self._event = Event()
        self.value = None
        self.exception = None

    def set(self, value=None):
        self.value = value
        self._event.set()

    def set_exception(self, exception):
        self.exception = exception
        self._event.set()

    def ready(self):
        return self._event.is_set()

    def successful(self):
        return self.ready() and self.exception is None

    def wait(self, timeout=None):
        """Waits for the result without raising it; returns the value (None on timeout)."""
        self._event.wait(timeout)
        return self.value

    def get(self, block=True, timeout=None):
        """The value, or raises the exception; Timeout if it is not there within `timeout` (or at once if not block)."""
        if not self._event.wait(timeout if block else 0):
            raise Timeout(timeout)
        if self.exception is not None:
            raise self.exception
        return self.value

    def get_nowait(self):
        return self.get(block=False)


class Greenlet:
    """One spawned call of fn(*args, **kwargs): join() it, get() its result, kill() it."""

    def __init__(self, fn, *args, **kwargs):
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self._result = AsyncResult()
        self._token = 0
        self._delay = 0
        self._running = False
        self._pending_kill = None  # an exception to raise as soon as it starts
        self._links = []

    @classmethod
    def spawn(cls, fn, *args, **kwargs):
        g = cls(fn, *args, **kwargs)
        g.start()
        return g

    @classmethod
    def spawn_later(cls, seconds, fn, *args, **kwargs):
        g = cls(fn, *args, **kwargs)
        g.start_later(seconds)
        return g

    def start(self):
        """Schedules the call; it runs once the caller next waits. Needs the async worker's hub."""
        if not self._token:
            self._token = _gcorn.spawn(self._run)

    def start_later(self, seconds):
        self._delay = seconds
        self.start()

    def _run(self):
        self._running = True
        try:
            if self._delay:
                _gcorn.sleep(self._delay)
            if self._pending_kill is not None:
                raise self._pending_kill
            self._result.set(self._fn(*self._args, **self._kwargs))
        except GreenletExit as e:
            self._result.set(e)  # killed: a successful end whose value is the GreenletExit, as in gevent
        except BaseException as e:
            self._result.set_exception(e)
            _gcorn.log(40, "%r failed:\n%s" % (self, "".join(traceback.format_exception(e))))
        finally:
            self._running = False
            self._fn = self._args = self._kwargs = None
            links, self._links = self._links, None
            for callback in links:
                callback(self)

    def link(self, callback):
        """callback(greenlet) once it has finished (at once if it already has)."""
        if self._links is None:
            callback(self)
        else:
            self._links.append(callback)

    # ---- state ----
    def ready(self):
        return self._result.ready()

    @property
    def dead(self):
        return self._result.ready()

    def successful(self):
        return self._result.successful()

    @property
    def value(self):
        return self._result.value

    @property
    def exception(self):
        return self._result.exception

    def __bool__(self):
        return bool(self._token) and not self.ready()

    def __repr__(self):
        state = "dead" if self.ready() else "running" if self._running else "pending"
        fn = getattr(self._fn, "__qualname__", None) or repr(self._fn)
        return "<gcorn.green.Greenlet %s %s at %s>" % (fn if self._fn else "", state, hex(id(self)))

    # ---- waiting and killing ----
    def join(self, timeout=None):
        """Waits until it has finished, or `timeout` seconds; never raises its exception."""
        self._result._event.wait(timeout)

    def get(self, block=True, timeout=None):
        """Its return value, or raises its exception; Timeout if it is still running after `timeout` seconds."""
        return self._result.get(block, timeout)

    def kill(self, exception=GreenletExit, block=True, timeout=None):
        """Raises `exception` (GreenletExit by default) inside it wherever it waits; with `block`, waits for its end."""
        if self.ready():
            return
        if isinstance(exception, type):
            exception = exception()
        if self._running and self._token == _gcorn.current_token():
            raise exception  # killing ourselves
        if self._running:
            _gcorn.throw_later(self._token, 0, exception)
        else:
            self._pending_kill = exception
        if block:
            self.join(timeout)


def spawn(fn, *args, **kwargs):
    """Runs fn(*args, **kwargs) in a new greenlet; returns its Greenlet. Never switches: it starts when we wait."""
    return Greenlet.spawn(fn, *args, **kwargs)


def spawn_later(seconds, fn, *args, **kwargs):
    """spawn(), after `seconds`."""
    return Greenlet.spawn_later(seconds, fn, *args, **kwargs)


def joinall(greenlets, timeout=None, raise_error=False):
    """Waits for every greenlet (or `timeout` seconds); returns those that finished. With `raise_error`, raises the
    first exception found among them."""
    deadline = _deadline(timeout)
    done = []
    for g in greenlets:
        g.join(_remaining(deadline))
        if not g.ready():
            break
        done.append(g)
        if raise_error and g.exception is not None:
            raise g.exception
    return done


class Semaphore:
    """A counter of `value` permits: acquire() takes one (waiting while there is none), release() gives it back."""

    def __init__(self, value=1):
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self._value = value
        self._mutex = _os_lock()
        self._waiters = WaitQueue()

    def _take(self):
        with self._mutex:
            if self._value > 0:
                self._value -= 1
                return True
            return False

    def acquire(self, blocking=True, timeout=None):
        """True once a permit is taken; False if not `blocking` or `timeout` seconds pass first."""
        return self._waiters.wait_until(self._take, timeout if blocking else 0)

    def release(self, n=1):
        with self._mutex:
            self._value += n
        for _ in range(n):
            if not self._waiters.wake_one():
                break

    def locked(self):
        return self._value <= 0

    @property
    def counter(self):
        return self._value

    def wait(self, timeout=None):
        """Waits until a permit is free, without taking it; returns the free count."""
        self._waiters.wait_until(lambda: self._value > 0, timeout)
        if self._value > 0:  # we may have been handed another waiter's wake
            self._waiters.wake_one()
        return self._value

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


class BoundedSemaphore(Semaphore):
    """A Semaphore that refuses to be released above its initial value (ValueError)."""

    def __init__(self, value=1):
        super().__init__(value)
        self._initial = value

    def release(self, n=1):
        with self._mutex:
            if self._value + n > self._initial:
                raise ValueError("Semaphore released too many times")
        super().release(n)


class Queue:
    """A FIFO between greenlets; `maxsize` (None or 0: unbounded) makes put() wait for room. Raises queue.Empty
    and queue.Full like the stdlib; task_done()/join() as queue.Queue."""

    def __init__(self, maxsize=None):
        self.maxsize = maxsize or 0
        self._items = deque()
        self._mutex = _os_lock()
        self._getters = WaitQueue()
        self._putters = WaitQueue()
        self._unfinished = 0
        self._all_done = Event()
        self._all_done.set()

    def qsize(self):
        return len(self._items)

    __len__ = qsize

    def empty(self):
        return not self._items

    def full(self):
        return 0 < self.maxsize <= len(self._items)

    def put(self, item, block=True, timeout=None):
        def room():
            with self._mutex:
                if self.full():
                    return False
                self._items.append(item)
                self._unfinished += 1
                self._all_done.clear()
                return True
        if not self._putters.wait_until(room, timeout if block else 0):
            raise Full
        self._getters.wake_one()

    def get(self, block=True, timeout=None):
        box = []

        def take():
            with self._mutex:
                if not self._items:
                    return False
                box.append(self._items.popleft())
                return True
        if not self._getters.wait_until(take, timeout if block else 0):
            raise Empty
        self._putters.wake_one()
        if self._items:  # items left: make sure another getter is not left asleep beside them
            self._getters.wake_one()
        return box[0]

    def put_nowait(self, item):
        self.put(item, block=False)

    def get_nowait(self):
        return self.get(block=False)

    def task_done(self):
        with self._mutex:
            if self._unfinished <= 0:
                raise ValueError("task_done() called too many times")
            self._unfinished -= 1
            finished = self._unfinished == 0
        if finished:
            self._all_done.set()

    def join(self, timeout=None):
        """Waits until every item put has been marked task_done(); False if `timeout` passes first."""
        return self._all_done.wait(timeout)

    def __iter__(self):
        return self

    def __next__(self):
        """Iterating gets items until one is StopIteration."""
        item = self.get()
        if item is StopIteration:
            raise StopIteration
        return item


class Timeout(BaseException):
    """Raised inside the greenlet that started it once `seconds` pass, wherever it is waiting.

        with Timeout(2):                 # raises Timeout out of the block after 2 s
            ...
        with Timeout(2, False):          # silently leaves the block after 2 s
            ...
        with Timeout(2, ValueError("x")):  # raises that exception instead

    A BaseException, so `except Exception` in the code it interrupts does not swallow it."""

    def __init__(self, seconds=None, exception=None):
        super().__init__(seconds)
        self.seconds = seconds
        self.exception = exception
        self._id = None

    @classmethod
    def start_new(cls, seconds=None, exception=None):
        timeout = cls(seconds, exception)
        timeout.start()
        return timeout

    def start(self):
        """Arms it for the calling greenlet (no-op for seconds=None)."""
        if self._id is not None:
            raise AssertionError("%r is already started" % self)
        if self.seconds is None:
            return
        token = _gcorn.current_token()
        if not token:
            raise RuntimeError("gcorn.green.Timeout works in the async worker's greenlets only")
        exc = self.exception
        if exc is None or exc is False:
            exc = self
        elif isinstance(exc, type):
            exc = exc()
        self._id = _gcorn.throw_later(token, self.seconds, exc)

    @property
    def pending(self):
        return self._id is not None

    def cancel(self):
        if self._id is not None:
            _gcorn.cancel_throw(self._id)
            self._id = None

    close = cancel

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, typ, value, tb):
        self.cancel()
        return value is self and self.exception is False

    def __str__(self):
        if self.seconds is None:
            return ""
        suffix = " (silent)" if self.exception is False else ""
        return "%s second%s%s" % (self.seconds, "" if self.seconds == 1 else "s", suffix)

    def __repr__(self):
        return "<gcorn.green.Timeout seconds=%s%s>" % (self.seconds, " pending" if self.pending else "")


class Pool:
    """A group of greenlets of at most `size` (None: unbounded) running at once; spawn() waits for a free slot."""

    def __init__(self, size=None):
        if size is not None and size < 1:
            raise ValueError("Pool size must be at least 1 (or None)")
        self.size = size
        self._slots = Semaphore(size) if size else None
        self._greenlets = set()
        self._empty = Event()
        self._empty.set()

    def __len__(self):
        return len(self._greenlets)

    def __contains__(self, g):
        return g in self._greenlets

    def free_count(self):
        return float("inf") if self.size is None else self.size - len(self._greenlets)

    def full(self):
        return self.free_count() <= 0

    def wait_available(self, timeout=None):
        """Waits until spawn() would not wait; returns the free count."""
        if self._slots is not None:
            self._slots.wait(timeout)
        return self.free_count()

    def spawn(self, fn, *args, **kwargs):
        if self._slots is not None:
            self._slots.acquire()
        g = Greenlet(fn, *args, **kwargs)
        self._greenlets.add(g)
        self._empty.clear()
        g.link(self._discard)
        g.start()
        return g

    def _discard(self, g):
        self._greenlets.discard(g)
        if self._slots is not None:
            self._slots.release()
        if not self._greenlets:
            self._empty.set()

    def join(self, timeout=None, raise_error=False):
        """Waits until every greenlet has finished; False if `timeout` passes first."""
        greenlets = list(self._greenlets)
        done = self._empty.wait(timeout)
        if raise_error:
            for g in greenlets:
                if g.exception is not None:
                    raise g.exception
        return done

    def kill(self, exception=GreenletExit, block=True, timeout=None):
        for g in list(self._greenlets):
            g.kill(exception, block=False)
        if block:
            self.join(timeout)

    def apply(self, fn, args=(), kwargs=None):
        return self.spawn(fn, *args, **(kwargs or {})).get()

    def map(self, fn, iterable):
        """[fn(x) for x in iterable], at most `size` at a time; raises the first exception in order."""
        return [g.get() for g in [self.spawn(fn, item) for item in iterable]]

    def imap_unordered(self, fn, iterable):
        """Yields fn(x) for each x as each finishes; the items are spawned as slots free up."""
        results = Queue()
        count = 0
        for item in iterable:
            self.spawn(fn, item).link(results.put)
            count += 1
        for _ in range(count):
            yield results.get().get()

