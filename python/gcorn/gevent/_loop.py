"""gevent's event loop interface (gevent._interfaces.ILoop) on gcorn's reactor (src/hub/event_loop.cpp).

The reactor (io readiness in a level-triggered epoll set, Asio timers, cross-thread wake-ups, signals) is C++;
this module is the interface gevent's hub and its patched stdlib call: watchers, callbacks and the run loop, in
the order libev runs them (fork, prepare, callbacks, poll, timers/io/signals by priority, idle, check). The
reactor hands back what fired in batches, so every watcher callback runs here, in the loop's greenlet, never
inside an Asio handler.

    GEVENT_LOOP=gcorn.gevent.loop python3 app.py
"""
import os
import signal as _signal
import sys
import threading
import traceback

import _gcorn

__all__ = ["loop", "READ", "WRITE", "MAXPRI", "MINPRI", "supported_backends", "callback", "io", "timer", "prepare",
           "check", "idle", "async_", "fork", "signal", "child", "stat"]

READ, WRITE = 1, 2
MAXPRI, MINPRI = 2, -2
# A blocking poll on the default loop wakes at least this often, so Python's signal handlers (Ctrl-C) run.
_SIGNAL_CHECK_INTERVAL = 0.3


def supported_backends():
    return ["default"]


callback = _gcorn.callback  # what run_callback returns (src/py/callback_queue.cpp)


class watcher:
    """The watcher base: start/stop/close, callback and args, ref, priority, active, pending."""

    def __init__(self, loop, ref=True, priority=None):
        self.loop = loop
        self._ref = bool(ref)
        self._priority = priority or 0
        self._callback = None
        self._args = None
        self._active = False
        self._id = None

    # -- attributes gevent reads and sets --
    @property
    def callback(self):
        return self._callback

    @callback.setter
    def callback(self, value):
        if value is not None and not callable(value):
            raise TypeError("Expected callable, not %r" % (value,))
        self._callback = value

    @property
    def args(self):
        return self._args

    @args.setter
    def args(self, value):
        if value is not None and not isinstance(value, tuple):
            raise TypeError("args must be a tuple or None")
        self._args = value

    @property
    def ref(self):
        return self._ref

    @ref.setter
    def ref(self, value):
        value = bool(value)
        if self._active and value != self._ref:
            self.loop._refs += 1 if value else -1
        self._ref = value

    @property
    def priority(self):
        return self._priority

    @priority.setter
    def priority(self, value):
        if self._active:
            raise AttributeError("Cannot set priority of an active watcher")
        self._priority = value

    @property
    def active(self):
        return self._active

    @property
    def pending(self):
        return False

    # -- life cycle --
    def start(self, callback, *args):
        if not callable(callback):
            raise TypeError("Expected callable, not %r" % (callback,))
        self._callback = callback
        self._args = args
        if not self._active:
            self._active = True
            self.loop._activate(self)
            self._start()

    def stop(self):
        self._callback = None
        self._args = None
        if self._active:
            self._active = False
            self.loop._deactivate(self)
            self._stop()

    def close(self):
        self.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _start(self):
        pass

    def _stop(self):
        pass

    def _call(self, *extra):
        func, args = self._callback, self._args
        if func is None:
            return
        try:
            func(*extra, *(args or ()))
        except:  # noqa: E722 - gevent's loops hand every exception (even SystemExit) to handle_error
            self.loop.handle_error(self, *sys.exc_info())

    def __repr__(self):
        return "<%s at 0x%x%s%s>" % (type(self).__name__, id(self), " active" if self._active else "",
                                     " callback=%r" % (self._callback,) if self._callback else "")


class _reactor_watcher(watcher):
    """A watcher the C++ reactor fires by id."""

    def _register(self, wid):
        self._id = wid
        self.loop._by_id[wid] = self

    def _unregister(self):
        self.loop._by_id.pop(self._id, None)
        wid, self._id = self._id, None
        return wid


class io(_reactor_watcher):
    def __init__(self, loop, fd, events, ref=True, priority=None):
        if fd < 0:
            raise ValueError("fd must be non-negative: %r" % (fd,))
        if events & ~(READ | WRITE) or not events:
            raise ValueError("illegal event mask: %r" % (events,))
        super().__init__(loop, ref, priority)
        self.fd = fd
        self.events = events
        self._pass_events = False

    def start(self, callback, *args, pass_events=False):
        self._pass_events = pass_events
        super().start(callback, *args)

    def _start(self):
        self._register(_gcorn.loop_io_start(self.loop._h, self.fd, self.events))

    def _stop(self):
        _gcorn.loop_io_stop(self.loop._h, self._unregister())

    def _fire(self, revents):
        if self._pass_events:
            self._call(revents)
        else:
            self._call()
        # A callback that raised leaves the watcher stopped (libev's io watchers in gevent do the same).

    def __repr__(self):
        return "<io at 0x%x fd=%s events=%s%s>" % (id(self), self.fd, self.events, " active" if self._active else "")


class timer(_reactor_watcher):
    def __init__(self, loop, after=0.0, repeat=0.0, ref=True, priority=None):
        if repeat < 0:
            raise ValueError("repeat must be positive or zero: %r" % (repeat,))
        super().__init__(loop, ref, priority)
        self.after = after
        self.repeat = repeat

    def start(self, callback, *args, update=None):
        if update:
            self.loop.update_now()
        super().start(callback, *args)

    def again(self, callback, *args, update=True):
        self.stop()
        self.after = self.repeat or self.after
        self.start(callback, *args, update=update)

    def _start(self):
        self._register(_gcorn.loop_timer_start(self.loop._h, max(0.0, float(self.after))))

    def _stop(self):
        wid = self._unregister()
        if wid is not None:
            _gcorn.loop_timer_stop(self.loop._h, wid)

    def _fire(self, _):
        self._unregister()
        if self.repeat:
            self._register(_gcorn.loop_timer_start(self.loop._h, float(self.repeat)))
        else:  # one-shot: inactive before its callback runs, which may start it again
            self._active = False
            self.loop._deactivate(self)
        self._call()
        if not self._active:
            self._callback = self._args = None

    @property
    def at(self):
        return self.loop.now() + self.after


class async_(_reactor_watcher):
    def __init__(self, loop, ref=True, priority=None):
        super().__init__(loop, ref, priority)
        self._sent = False

    def _start(self):
        self._register(_gcorn.loop_async_new(self.loop._h))

    def _stop(self):
        _gcorn.loop_async_close(self.loop._h, self._unregister())

    def send(self):
        wid = self._id
        if wid is not None:
            self._sent = True
            _gcorn.loop_async_send(self.loop._h, wid)  # thread-safe

    def send_ignoring_arg(self, _ignored):
        self.send()

    @property
    def pending(self):
        return self._sent

    def _fire(self, _):
        self._sent = False
        self._call()


class signal(_reactor_watcher):
    def __init__(self, loop, signalnum, ref=True, priority=None):
        if not 0 < signalnum < _signal.NSIG:
            raise ValueError("illegal signal number: %r" % (signalnum,))
        super().__init__(loop, ref, priority)
        self.signum = signalnum

    def _start(self):
        self._register(_gcorn.loop_signal_start(self.loop._h, self.signum))

    def _stop(self):
        _gcorn.loop_signal_stop(self.loop._h, self._unregister())

    def _fire(self, _):
        self._call()


class _phase_watcher(watcher):
    """prepare, check, idle and fork watchers: run by the loop at their point of each iteration."""
    _phase = None

    def _start(self):
        getattr(self.loop, self._phase).append(self)

    def _stop(self):
        phase = getattr(self.loop, self._phase)
        if self in phase:
            phase.remove(self)

    def _fire(self):
        self._call()


class prepare(_phase_watcher):
    _phase = "_prepares"


class check(_phase_watcher):
    _phase = "_checks"


class idle(_phase_watcher):
    _phase = "_idles"


class fork(_phase_watcher):
    _phase = "_forks"


class child(watcher):
    def __init__(self, loop, pid, trace=0, ref=True):
        if not loop.default:
            raise TypeError("child watchers are only available on the default loop")
        super().__init__(loop, ref)
        self.pid = pid
        self.rpid = 0
        self.rstatus = 0

    def _start(self):
        self.loop._children.add(self)
        self.loop.install_sigchld()

    def _stop(self):
        self.loop._children.discard(self)

    def _fire(self, pid, status):
        self.rpid, self.rstatus = pid, status
        self._call()


class stat(watcher):
    """Polls os.stat every `interval` seconds (libev's fallback when it has no inotify)."""

    def __init__(self, loop, path, interval=0.0, ref=True, priority=None):
        super().__init__(loop, ref, priority)
        self.path = path
        self.interval = interval or 5.0
        self.attr = None
        self.prev = None
        self._timer = None

    @staticmethod
    def _stat(path):
        try:
            return os.stat(path)
        except OSError:
            return None

    def _start(self):
        self.attr = self._stat(self.path)
        self._timer = self.loop.timer(self.interval, self.interval, ref=False)
        self._timer.start(self._poll)

    def _stop(self):
        if self._timer is not None:
            self._timer.close()
            self._timer = None

    def _poll(self):
        now = self._stat(self.path)
        if now != self.attr:
            self.prev, self.attr = self.attr, now
            self._call()


class loop:
    """gevent's ILoop on gcorn's reactor. `default` is the main thread's loop (child watchers, signals)."""

    MAXPRI = MAXPRI
    MINPRI = MINPRI
    approx_timer_resolution = 0.00001
    backend = "default"
    backend_int = 0
    starting_timer_may_update_loop_time = False

    def __init__(self, flags=None, default=None):
        _declare_interfaces()
        if default is None:
            default = threading.current_thread() is threading.main_thread()
        self.default = bool(default)
        # On the async worker's thread the loop runs on its reactor (gcorn.gevent._worker); elsewhere on its own.
        self._h = _gcorn.loop_new(True)
        self._by_id = {}
        self._active_watchers = set()  # active watchers stay alive while the reactor knows their id
        self._refs = 0
        self._callbacks = _gcorn.CallbackQueue(self.handle_error, self.update_now)
        self.run_callback = self._callbacks.append  # the hot path: straight into C++, no Python frame
        self._prepares, self._checks, self._idles, self._forks = [], [], [], []
        self._children = set()
        self._sigchld = None
        self._forked = False
        self._break = False
        self._now = _gcorn.loop_now()
        self.error_handler = None
        self._wake = async_(self, ref=False)  # run_callback_threadsafe wakes a blocked poll
        self._wake.start(lambda: None)

    # -- time --
    def now(self):
        return self._now

    def update_now(self):
        self._now = _gcorn.loop_now()

    def update(self):
        self.update_now()

    # -- watchers --
    def io(self, fd, events, ref=True, priority=None):
        return io(self, fd, events, ref, priority)

    def timer(self, after, repeat=0.0, ref=True, priority=None):
        return timer(self, after, repeat, ref, priority)

    def signal(self, signum, ref=True, priority=None):
        return signal(self, signum, ref, priority)

    def idle(self, ref=True, priority=None):
        return idle(self, ref, priority)

    def prepare(self, ref=True, priority=None):
        return prepare(self, ref, priority)

    def check(self, ref=True, priority=None):
        return check(self, ref, priority)

    def fork(self, ref=True, priority=None):
        return fork(self, ref, priority)

    def async_(self, ref=True, priority=None):
        return async_(self, ref, priority)

    def child(self, pid, trace=0, ref=True):
        return child(self, pid, trace, ref)

    def stat(self, path, interval=0.0, ref=True, priority=None):
        return stat(self, path, interval, ref, priority)

    def _activate(self, w):
        self._active_watchers.add(w)
        if w._ref:
            self._refs += 1

    def _deactivate(self, w):
        self._active_watchers.discard(w)
        if w._ref:
            self._refs -= 1

    # -- callbacks --
    def run_callback(self, func, *args):
        return self._callbacks.append(func, *args)

    def run_callback_threadsafe(self, func, *args):
        cb = self.run_callback(func, *args)
        self._wake.send()
        return cb

    def _run_callbacks(self):
        """FIFO, including callbacks queued meanwhile (in C++); False if it stopped after a switch interval."""
        return self._callbacks.run(sys.getswitchinterval())

    # -- errors --
    def handle_error(self, context, type, value, tb):
        try:
            from gevent.exceptions import HubDestroyed
        except ImportError:
            HubDestroyed = None
        if HubDestroyed is not None and type is HubDestroyed:
            self._callbacks.clear()
            self.break_()
            return
        handler = self.error_handler
        try:
            if handler is None:
                traceback.print_exception(type, value, tb)
            else:
                getattr(handler, "handle_error", handler)(context, type, value, tb)
        except:  # noqa: E722 - a failing error handler must not take the loop down (libev's prints and goes on)
            try:
                traceback.print_exc()
            except Exception:  # stderr itself is broken: nothing left to tell
                pass

    # -- children (SIGCHLD, on the default loop) --
    def install_sigchld(self):
        if self._sigchld is None and self.default:
            self._sigchld = self.signal(_signal.SIGCHLD, ref=False)
            self._sigchld.start(self._reap_children)

    def reset_sigchld(self):
        if self._sigchld is not None:
            self._sigchld.close()
            self._sigchld = None

    def _reap_children(self):
        while self._children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for w in list(self._children):
                if w.pid in (pid, 0):
                    w._fire(pid, status)

    # -- running --
    def run(self, nowait=False, once=False):
        self._break = False
        while True:
            if self._forked:
                self._forked = False
                for w in list(self._forks):
                    w._fire()
            for w in list(self._prepares):
                w._fire()
            finished = self._run_callbacks()
            if self._break:
                break
            alive = self._refs > 0 or bool(self._callbacks)
            block = alive and finished and not (nowait or self._callbacks or self._idles)
            fired = _gcorn.loop_poll(self._h, block, _SIGNAL_CHECK_INTERVAL if self.default else None)
            if fired is None:  # the worker stopped its reactor: its greenlets end here, then gevent's hub returns
                _gcorn.hub_finish()
                return
            self.update_now()
            # What runs in this iteration is decided here, as libev collects its pending watchers after the poll: a
            # check or idle watcher started by a callback below waits for the next iteration.
            idles = list(self._idles) if not fired and not self._callbacks else ()
            checks = list(self._checks)
            if len(fired) > 1:
                fired.sort(key=lambda f: -self._priority_of(f[0]))
            for wid, events in fired:
                w = self._by_id.get(wid)
                if w is not None and w._active:
                    w._fire(events)
                if self._break:
                    break
            for w in idles:
                if w._active:
                    w._fire()
            for w in checks:
                if w._active:
                    w._fire()
            if self._break or once or nowait:
                break
            if self._refs <= 0 and not self._callbacks:
                break

    def _priority_of(self, wid):
        w = self._by_id.get(wid)
        return w._priority if w is not None else 0

    def break_(self, how=None):
        self._break = True

    def reinit(self):
        _gcorn.loop_reinit(self._h)
        self._forked = True

    def verify(self):
        pass

    def closing_fd(self, fd):
        return False

    def ref(self):
        self._refs += 1

    def unref(self):
        self._refs -= 1

    @property
    def activecnt(self):
        return self._refs

    @property
    def pendingcnt(self):
        return len(self._callbacks)

    @property
    def sig_pending(self):
        return False

    @property
    def ptr(self):
        return self._h

    def fileno(self):
        return None

    def destroy(self):
        if not self._h:
            return
        for w in list(self._active_watchers):
            w.stop()
        self._callbacks.clear()
        _gcorn.loop_destroy(self._h)
        self._h = 0
        self.default = False

    def _format(self):
        return "gcorn default" if self.default else "gcorn"

    def __repr__(self):
        return "<%s.loop at 0x%x %s refs=%s callbacks=%s>" % (__name__, id(self), self._format(), self._refs,
                                                             len(self._callbacks))


_declared = []


def _declare_interfaces():
    """The loop and its callbacks implement gevent's ILoop and ICallback (checked with zope.interface). Done at
    the first loop, not at import: gevent imports this module while it is itself being imported."""
    if _declared:
        return
    _declared.append(True)
    try:
        from zope.interface import classImplements
        from gevent._interfaces import ICallback, ILoop
    except ImportError:
        return
    classImplements(loop, ILoop)
    classImplements(callback, ICallback)


setattr(loop, "async", loop.async_)  # gevent's older name for it (a keyword since Python 3.7)
