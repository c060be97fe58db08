"""gevent's hub as the async worker's hub (src/hub/hub.cpp, hub::run): called when the app has imported gevent.

gevent's Hub greenlet then runs gcorn.gevent.loop bound to the worker's reactor: gcorn's connection greenlets,
gevent's greenlets and gevent's patched stdlib all park on one reactor and one hub.
"""
import gevent
from gevent._hub_local import get_hub_if_exists

import _gcorn
from gcorn.gevent._loop import loop as gcorn_loop


def adopt():
    gevent.config.loop = gcorn_loop
    hub = get_hub_if_exists()
    if hub is not None and not (isinstance(hub.loop, gcorn_loop) and _gcorn.loop_on_worker(hub.loop._h)):
        # Made while the app was imported, before the worker's reactor existed: what it held is not served.
        hub.destroy(destroy_loop=True)
    hub = gevent.get_hub()
    # The worker's own work (its listeners, its connections) is on the reactor, not in gevent's watchers: the loop
    # runs until the worker stops its reactor, not until gevent has nothing left to wait for.
    hub.loop.ref()
    return hub
