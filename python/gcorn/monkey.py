# Makes blocking standard-library calls cooperative under gcorn's async worker: each patched call parks
# only its own greenlet on the hub (via _gcorn's primitives) instead of blocking the worker process.
# Outside a hub greenlet the patched calls block as the originals do. Must not import the app.
import sys

import _gcorn

_patched = set()
# The modules gcorn's patches change, and what they held before: {module: {attribute: original}}, and what gcorn
# put there instead. gevent reads the originals (gevent.monkey.saved, get_original) when it is imported later.
_WATCHED = ("_thread", "threading", "_threading_local", "time", "socket", "ssl", "select", "selectors", "queue",
            "subprocess", "os")
originals = {}
replacements = {}


def _once(name):
    if name in _patched:
        return False
    _patched.add(name)
    return True


def patch_time():
    """time.sleep yields to the hub for its duration."""
    if _once("time"):
        import time
        time.sleep = _gcorn.sleep


def patch_socket(dns=True):
    """socket.socket (so also create_connection, create_server, socketpair, fromfd, accept and dup) with
    cooperative blocking and timeout modes; with `dns`, getaddrinfo and friends on the hub's thread pool."""
    if _once("socket"):
        import socket
        from gcorn import _socket
        socket.socket = _socket.socket
        if dns:
            patch_dns()


def patch_dns():
    """getaddrinfo, gethostbyname(_ex), gethostbyaddr and getnameinfo run on the hub's thread pool."""
    if _once("dns"):
        import socket
        from gcorn import _socket
        for name in _socket.DNS_FUNCTIONS:
            setattr(socket, name, _socket.threadpooled(getattr(socket, name)))


def patch_ssl():
    """ssl.SSLContext.wrap_socket returns an SSLSocket whose handshake, reads, writes and unwrap yield."""
    if _once("ssl"):
        patch_socket()
        from gcorn import _ssl
        _ssl.patch_ssl()


def patch_select():
    """select.select and select.poll yield; select.epoll/devpoll/kqueue are withdrawn (as gevent does) so
    libraries fall back to the cooperative ones."""
    if _once("select"):
        from gcorn import _select
        _select.patch_select()


def patch_selectors():
    """selectors.DefaultSelector (and PollSelector, SelectSelector) wait cooperatively."""
    if _once("selectors"):
        from gcorn import _select
        _select.patch_selectors()


def patch_thread():
    """_thread/threading: Lock (so RLock, Condition, Semaphore, Event, Barrier, Timer) parks a greenlet;
    threads started inside a hub greenlet are greenlets; get_ident and threading.local are per greenlet."""
    if _once("thread"):
        from gcorn import _threading
        _threading.patch_threading()
    patch_local()


def patch_local():
    """threading.local keyed by greenlet, so request-local state does not leak between connections."""
    if not _once("local"):
        return
    import _thread
    import _threading_local
    import threading
    import greenlet
    # _threading_local keeps one dict per object current_thread() returns; a greenlet is such an object
    # (weak-referenceable, with a __dict__), so keying by greenlet gives each greenlet its own state.
    _threading_local.current_thread = greenlet.getcurrent
    threading.local = _threading_local.local
    _thread._local = _threading_local.local


def patch_queue():
    """queue.Queue, LifoQueue and PriorityQueue take threading's (patched) locks when created; SimpleQueue,
    a C type, is replaced by the stdlib's Python version on top of them."""
    if _once("queue"):
        patch_thread()
        import queue
        queue.SimpleQueue = queue._PySimpleQueue


def patch_subprocess():
    """Popen's pipes, Popen.wait/communicate and os.waitpid/os.wait yield."""
    if _once("subprocess"):
        from gcorn import _subprocess
        _subprocess.patch_subprocess()


def patch_psycopg2():
    """psycopg2 (if importable) waits for PostgreSQL through the hub; True if installed."""
    if _once("psycopg2"):
        from gcorn import _psycopg2
        return _psycopg2.install()
    return True


def patch_all():
    """Every patch gcorn knows; idempotent. The async worker calls it before importing the app."""
    with _recording():
        _patch_all()
    _guard_gevent_import()


def _patch_all():
    patch_thread()  # first: locks that later imports create are then cooperative
    patch_time()
    patch_socket()
    patch_ssl()
    patch_select()
    patch_selectors()
    patch_queue()
    patch_subprocess()
    patch_psycopg2()


def is_patched(name):
    return name in _patched


class _recording:
    """Notes which module attributes the patches inside replace (module level only)."""

    def __enter__(self):
        import importlib
        self.before = {}
        for name in _WATCHED:
            self.before[name] = dict(vars(importlib.import_module(name)))

    def __exit__(self, *exc):
        for name, before in self.before.items():
            now = vars(sys.modules[name])
            for attr, value in now.items():
                if attr in before and before[attr] is not value:
                    originals.setdefault(name, {}).setdefault(attr, before[attr])
                    replacements.setdefault(name, {})[attr] = value


class _originals_restored:
    """Puts the original attributes back for the duration (gcorn's own are restored after)."""

    def __enter__(self):
        for name, attrs in originals.items():
            module = sys.modules[name]
            for attr, value in attrs.items():
                setattr(module, attr, value)

    def __exit__(self, *exc):
        for name, attrs in replacements.items():
            module = sys.modules[name]
            for attr, value in attrs.items():
                setattr(module, attr, value)


def _guard_gevent_import():
    """gcorn.monkey and gevent.monkey agree: if the app imports gevent after gcorn has patched the stdlib, gevent
    is imported with the original stdlib in place, so what it captures at import (its per-thread hub, the real
    threads of its thread pool) is real, and gevent.monkey.saved holds the originals: gevent.monkey.get_original()
    returns them and is_module_patched() says which modules gcorn made cooperative. Costs nothing unless gevent is
    imported: a finder that answers only for "gevent" and removes itself."""
    if "gevent" in sys.modules or any(isinstance(f, _GeventFirstImport) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _GeventFirstImport())


class _GeventFirstImport:
    def find_spec(self, fullname, path=None, target=None):
        if fullname != "gevent":
            return None
        sys.meta_path.remove(self)
        import importlib.util
        spec = importlib.util.find_spec("gevent")
        if spec is not None and spec.loader is not None:
            spec.loader = _LoadWithOriginals(spec.loader)
        return spec


class _LoadWithOriginals:
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        with _originals_restored():
            self.loader.exec_module(module)
            import importlib
            monkey = importlib.import_module("gevent.monkey")
            for name, attrs in originals.items():
                for attr, value in attrs.items():
                    monkey.saved.setdefault(name, {}).setdefault(attr, value)
            # gevent's modules that capture stdlib functions when imported, imported now while they are the originals
            for submodule in ("gevent.hub", "gevent._threading", "gevent.thread", "gevent.threadpool", "gevent.os",
                              "gevent.local", "gevent.socket"):
                try:
                    importlib.import_module(submodule)
                except ImportError:
                    pass

    def __getattr__(self, name):  # is_package, get_code, get_source... from the real loader
        return getattr(self.loader, name)


__all__ = ["patch_all", "patch_time", "patch_socket", "patch_dns", "patch_ssl", "patch_select", "patch_selectors",
           "patch_thread", "patch_local", "patch_queue", "patch_subprocess", "patch_psycopg2", "is_patched"]
