# An app written for Gunicorn's gevent worker that uses gevent's API inside its requests (issue 15). Each
# endpoint reports what it observed (how many greenlets were inside a wait at once), never how long it took.
import json

import gevent
import gevent.local
import gevent.subprocess
from gevent.event import Event
from gevent.lock import Semaphore
from gevent.pool import Pool
from gevent.queue import Queue

import overlap


class Inside:
    """How many greenlets of one request were inside `wait` at once."""

    def __init__(self):
        self.now = self.peak = 0

    def __call__(self, wait, *args):
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            return wait(*args)
        finally:
            self.now -= 1


def spawn_joinall():
    inside = Inside()
    jobs = [gevent.spawn(inside, gevent.sleep, 0.3) for _ in range(3)]
    gevent.joinall(jobs, raise_error=True)
    return {"inner_peak": inside.peak}


def pool():
    inside = Inside()
    got = sorted(Pool(3).imap_unordered(lambda n: inside(gevent.sleep, 0.05) or n, range(9)))
    return {"inner_peak": inside.peak, "results": got}


def queue():
    q = Queue()
    for i in range(3):
        gevent.spawn_later(0.02 * (3 - i), q.put, i)
    return {"order": [q.get(timeout=10) for _ in range(3)]}


def timeout():
    try:
        with gevent.Timeout(0.05):
            gevent.sleep(30)
    except gevent.Timeout:
        return {"timed_out": True}
    return {"timed_out": False}


def event():
    ev, seen = Event(), []
    waiters = [gevent.spawn(lambda n: (ev.wait(), seen.append(n)), n) for n in range(3)]
    gevent.sleep(0)
    ev.set()
    gevent.joinall(waiters, raise_error=True)
    return {"woken": sorted(seen)}


def semaphore():
    sem, inside = Semaphore(2), Inside()

    def guarded():
        with sem:
            inside(gevent.sleep, 0.02)
    gevent.joinall([gevent.spawn(guarded) for _ in range(6)], raise_error=True)
    return {"inner_peak": inside.peak}


def local():
    data = gevent.local.local()

    def own(n):
        data.n = n
        gevent.sleep(0.01)
        return data.n
    return {"values": [g.get() for g in [gevent.spawn(own, n) for n in range(3)]]}


def subprocess():
    return {"output": gevent.subprocess.check_output(["echo", "from a child"]).decode().strip()}


def fetch_in_greenlets(url):
    # No gevent.monkey here: urllib's sockets are gcorn.monkey's, and gevent's greenlets park in them on the hub.
    import urllib.request
    jobs = [gevent.spawn(lambda: urllib.request.urlopen(url, timeout=30).read().decode()) for _ in range(3)]
    return {"bodies": [g.get() for g in jobs]}


def which_loop():
    return {"loop": type(gevent.get_hub().loop).__module__}


ROUTES = {"/spawn": spawn_joinall, "/pool": pool, "/queue": queue, "/timeout": timeout, "/event": event,
          "/semaphore": semaphore, "/local": local, "/subprocess": subprocess, "/loop": which_loop}


def _app(environ, start_response):
    if environ["PATH_INFO"] == "/fetch":
        result = fetch_in_greenlets(environ["QUERY_STRING"])
    elif environ["PATH_INFO"] not in ROUTES:
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]
    else:
        result = ROUTES[environ["PATH_INFO"]]()
    body = json.dumps(result).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


app = overlap.track(_app)
