# Makes blocking standard-library calls cooperative under gcorn's async worker: each patched call parks
# only its own greenlet on the hub (via _gcorn's primitives) instead of blocking the worker process.
# Outside a hub greenlet the patched calls block as the originals do. Must not import the app.
import sys

import _gcorn

_patched = set()


def _once(name):
    if name in _patched:
        return False
    _patched.add(name)
    return True


def patch_time():
    """time.sleep yields to the hub for its duration."""
    if not _once("time"):
        return
    import time
    time.sleep = _gcorn.sleep


def patch_socket():
    """socket.socket with cooperative blocking and timeout modes; DNS lookups on the hub's thread pool."""
    if not _once("socket"):
        return
    import socket
    from gcorn import _socket
    socket.socket = _socket.socket
    socket.SocketType = _socket.socket
    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo"):
        setattr(socket, name, _socket.threadpooled(getattr(socket, name)))
    socket.socketpair = _socket.socketpair
    socket.fromfd = _socket.fromfd
    socket.create_connection.__globals__["socket"] = _socket.socket  # same module: already patched


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


def patch_all():
    """Every patch gcorn knows; idempotent. The async worker calls it before importing the app."""
    patch_time()
    patch_socket()
    patch_local()


def is_patched(name):
    return name in _patched


__all__ = ["patch_all", "patch_time", "patch_socket", "patch_local", "is_patched"]
