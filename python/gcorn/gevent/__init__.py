"""gevent on gcorn's reactor.

`gcorn.gevent.loop` is gevent's event loop implemented on gcorn's Asio reactor (see _loop.py): gevent resolves
GEVENT_LOOP=gcorn.gevent.loop by importing this package and calling its `loop` attribute.
"""
from gcorn.gevent._loop import loop  # noqa: F401

__all__ = ["loop"]
