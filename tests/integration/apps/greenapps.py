# Test app for gcorn.green (fan-out inside a request) and for gcorn.monkey (the patched stdlib under load):
# GET /<case>?<args> runs one case in the request's greenlet and answers its result as JSON.
import json
import os
import queue
import select
import selectors
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from urllib.parse import parse_qs

import _gcorn
from gcorn import green, monkey

import overlap

CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


def _app(environ, start_response):
    name = environ["PATH_INFO"].strip("/") or "hello"
    args = {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"]).items()}
    try:
        status, body = "200 OK", json.dumps(CASES[name](**args))
    except Exception as e:
        status, body = "500 Internal Server Error", json.dumps({"error": repr(e)})
    data = body.encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def _timed(fn):
    start = time.monotonic()
    value = fn()
    return value, round(time.monotonic() - start, 3)


@case
def hello():
    return "hello"


# ---- gcorn.green ----
@case
def fanout(upstream):
    """The README's example: three upstreams fetched in parallel inside one request."""
    def fetch(path):
        with urllib.request.urlopen(upstream + path, timeout=10) as r:
            return r.read().decode()
    def all_three():
        jobs = [green.spawn(fetch, path) for path in ("/a", "/b", "/c")]
        green.joinall(jobs, timeout=5, raise_error=True)
        return [g.value for g in jobs]
    values, seconds = _timed(all_three)
    return {"values": values, "seconds": seconds}


@case
def spawn_and_get():
    g = green.spawn(lambda a, b=0: a + b, 2, b=3)
    fails = green.spawn(lambda: 1 / 0)
    later = green.spawn_later(0.1, time.monotonic)
    start = time.monotonic()
    green.joinall([g, fails, later])
    try:
        fails.get()
        raised = None
    except ZeroDivisionError as e:
        raised = type(e).__name__
    return {"value": g.get(), "successful": [g.successful(), fails.successful()], "raised": raised,
            "later_delay": round(later.value - start, 3), "dead": g.dead}


@case
def joinall_timeout():
    slow = green.spawn(green.sleep, 5)
    quick = green.spawn(green.sleep, 0.01)
    done, seconds = _timed(lambda: green.joinall([quick, slow], timeout=0.2))
    slow.kill()
    return {"done": len(done), "seconds": seconds, "killed_value": type(slow.value).__name__, "dead": slow.dead}


@case
def timeouts():
    out = {}
    try:
        with green.Timeout(0.1):
            green.sleep(5)
    except green.Timeout as t:
        out["raised"] = str(t)
    with green.Timeout(0.1, False):
        green.sleep(5)
        out["not_reached"] = True
    out["silent"] = True
    try:
        with green.Timeout(0.1, ValueError("custom")):
            a, b = socket.socketpair()
            a.recv(1)  # a blocking socket wait is interrupted too
    except ValueError as e:
        out["custom"] = str(e)
    with green.Timeout(5) as t:  # cancelled on exit: nothing fires later
        green.sleep(0.01)
    out["pending_after_exit"] = t.pending
    green.sleep(0.05)
    try:
        green.AsyncResult().get(timeout=0.05)
    except green.Timeout:
        out["asyncresult_timeout"] = True
    return out


@case
def events():
    ev, result = green.Event(), green.AsyncResult()
    order = []
    def waiter(i):
        ev.wait()
        order.append(i)
    waiters = [green.spawn(waiter, i) for i in range(3)]
    green.spawn_later(0.05, ev.set)
    green.spawn_later(0.05, result.set, "payload")
    failed = green.AsyncResult()
    green.spawn(failed.set_exception, KeyError("k"))
    green.joinall(waiters)
    try:
        failed.get()
    except KeyError:
        failed_raised = True
    return {"order": sorted(order), "result": result.get(timeout=1), "failed_raised": failed_raised,
            "wait_timeout": green.Event().wait(0.01)}


@case
def queues():
    q = green.Queue(maxsize=2)
    got = []
    def producer():
        for i in range(10):
            q.put(i)
        q.put(StopIteration)
    def consumer():
        for item in q:
            got.append(item)
            green.sleep(0.001)
    green.joinall([green.spawn(producer), green.spawn(consumer)])
    empty = green.Queue()
    try:
        empty.get(timeout=0.01)
    except green.Empty:
        timed_out = True
    full = green.Queue(1)
    full.put(1)
    try:
        full.put_nowait(2)
    except green.Full:
        was_full = True
    return {"got": got, "timed_out": timed_out, "was_full": was_full}


@case
def semaphores_and_pools():
    running, peak = [0], [0]
    def task(i):
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        green.sleep(0.02)
        running[0] -= 1
        return i * i
    pool = green.Pool(3)
    squares, seconds = _timed(lambda: pool.map(task, range(12)))
    pool_peak = peak[0]
    unordered = sorted(pool.imap_unordered(task, range(6)))
    sem, peak[0] = green.Semaphore(2), 0
    def limited(i):
        with sem:
            task(i)
    green.joinall([green.spawn(limited, i) for i in range(6)])
    bounded = green.BoundedSemaphore(1)
    try:
        bounded.release()
    except ValueError:
        over_release = True
    pool.join()
    return {"squares": squares, "pool_peak": pool_peak, "seconds": seconds, "unordered": unordered,
            "semaphore_peak": peak[0], "over_release": over_release, "free": pool.free_count()}


@case
def kill_blocked():
    a, b = socket.socketpair()
    g = green.spawn(a.recv, 1)
    green.sleep(0.01)
    g.kill()
    waiter = green.spawn(green.wait_read, a.fileno(), 5)
    green.spawn_later(0.02, b.send, b"x")
    waiter.join(1)
    with_timeout = green.spawn(green.wait_read, a, 0.01)  # `a` still has the unread byte: ready at once
    drained = a.recv(1)
    empty_wait = green.spawn(green.wait_read, a, 0.01)
    with_timeout.join(), empty_wait.join()
    return {"killed": type(g.value).__name__, "woken": waiter.successful(), "drained": drained.decode(),
            "timeout_error": type(empty_wait.exception).__name__}


@case
def interruptions():
    """Timeouts and kills that land in the hub's less common waits: the thread pool, a lock queue, a closed socket."""
    out = {}
    r, w = os.pipe()
    try:
        with green.Timeout(0.05):
            _gcorn.run_in_threadpool(os.read, r, 1)  # a pool thread stays blocked in read() meanwhile
    except green.Timeout:
        out["pool_interrupted"] = True
    out["pool_again"] = _gcorn.run_in_threadpool(os.getpid) == os.getpid()
    os.write(w, b"x")  # frees the pool thread
    lock, got = threading.Lock(), []
    def holder():
        with lock:
            time.sleep(0.2)
    def impatient():
        try:
            with green.Timeout(0.05):
                lock.acquire()
        except green.Timeout:
            got.append("impatient timed out")
    def patient():
        with lock:
            got.append("patient")
    jobs = [green.spawn(holder), green.spawn(impatient), green.spawn(patient)]
    green.joinall(jobs, timeout=5)
    out["lock"] = got
    a, b = socket.socketpair()
    reader = green.spawn(a.recv, 1)
    green.sleep(0.01)
    a.close()  # wakes the reader at once instead of leaving it parked on a closed fd
    reader.join(1)
    out["closed"] = getattr(reader.exception, "errno", None)
    return out


# ---- gcorn.monkey ----
@case
def patched():
    import _thread
    from gcorn import _socket, _ssl, _sync
    before = (socket.socket, time.sleep, threading.Lock, select.select, queue.SimpleQueue, subprocess.Popen)
    monkey.patch_all()  # again: a no-op
    after = (socket.socket, time.sleep, threading.Lock, select.select, queue.SimpleQueue, subprocess.Popen)
    try:
        from psycopg2 import extensions
        psycopg2_callback = extensions.get_wait_callback() is not None
    except ImportError:
        psycopg2_callback = None
    return {
        "idempotent": before == after,
        "socket": socket.socket is _socket.socket,
        "ssl": ssl.SSLContext.sslsocket_class is _ssl.SSLSocket,
        "sleep": time.sleep is _gcorn.sleep,
        "epoll_withdrawn": not hasattr(select, "epoll") and not hasattr(selectors, "EpollSelector"),
        "default_selector": selectors.DefaultSelector.__name__,
        "lock": type(threading.Lock()) is _sync.Lock and type(_thread.allocate_lock()) is _sync.Lock,
        "rlock": type(threading.RLock()).__name__,
        "simple_queue": queue.SimpleQueue.__name__,
        "popen": subprocess.Popen.__module__,
        "psycopg2": psycopg2_callback,
        "all_patched": all(monkey.is_patched(n) for n in ("socket", "dns", "ssl", "time", "select", "selectors",
                                                           "thread", "local", "queue", "subprocess")),
    }


@case
def threads():
    """Threads started inside a request are greenlets: three 0.2 s sleepers take 0.2 s, and sync works."""
    results, lock, cond, items = [], threading.Lock(), threading.Condition(), []
    sleeping = {"now": 0, "peak": 0}
    def sleeper(i):
        with lock:
            sleeping["now"] += 1
            sleeping["peak"] = max(sleeping["peak"], sleeping["now"])
        time.sleep(0.2)
        with lock:
            sleeping["now"] -= 1
            results.append(i)
    def consumer():
        with cond:
            cond.wait_for(lambda: items, timeout=5)
            results.append(items.pop())
    def run():
        ts = [threading.Thread(target=sleeper, args=(i,)) for i in range(3)] + [threading.Thread(target=consumer)]
        for t in ts:
            t.start()
        time.sleep(0.05)
        with cond:
            items.append("item")
            cond.notify()
        for t in ts:
            t.join(5)
        return not any(t.is_alive() for t in ts)
    joined = run()
    q, sem, ev = queue.Queue(), threading.BoundedSemaphore(1), threading.Event()
    threading.Timer(0.05, ev.set).start()
    threading.Thread(target=lambda: q.put(threading.get_ident())).start()
    other_ident = q.get(timeout=5)
    with sem:
        pass
    return {"results": sorted(map(str, results)), "joined": joined, "sleepers_peak": sleeping["peak"],
            "event": ev.wait(5),
            "distinct_ident": other_ident != threading.get_ident(), "current": threading.current_thread().name}


@case
def background(s="100"):
    """A non-daemon thread (a greenlet) still sleeping when the worker is told to stop."""
    threading.Thread(target=time.sleep, args=(float(s),), daemon=False).start()
    return {"started": True}


@case
def selecting(s="0.2"):
    """select.select, select.poll and a selectors.DefaultSelector each wait `s` seconds for a late writer."""
    a, b = socket.socketpair()
    delay = float(s)
    def late_write():
        time.sleep(delay)
        b.send(b"x")
    def run():
        threading.Thread(target=late_write).start()
        r, _, _ = select.select([a], [], [], 5)
        a.recv(1)
        threading.Thread(target=late_write).start()
        p = select.poll()
        p.register(a, select.POLLIN)
        polled = p.poll(5000)
        a.recv(1)
        threading.Thread(target=late_write).start()
        with selectors.DefaultSelector() as sel:
            sel.register(a, selectors.EVENT_READ)
            events = sel.select(5)
        a.recv(1)
        return [len(r), len(polled), len(events)]
    counts, seconds = _timed(run)
    timed_out = select.select([a], [], [], 0.01)
    return {"counts": counts, "seconds": seconds, "timed_out": timed_out == ([], [], [])}


@case
def subprocesses(s="0.2"):
    def run():
        out = subprocess.run([sys.executable if os.path.exists(sys.executable) else "/usr/bin/python3", "-c",
                              "import sys, time; time.sleep(%s); sys.stdout.write(sys.stdin.read().upper())" % s],
                             input=b"ping", capture_output=True, timeout=10)
        echoed = subprocess.check_output(["echo", "hi"], text=True)
        p = subprocess.Popen(["sleep", s])
        code = p.wait()
        pid = os.spawnv(os.P_NOWAIT, "/bin/sleep", ["sleep", s])  # a child subprocess does not track
        waited = os.waitpid(pid, 0)[0] == pid
        return [out.stdout.decode(), echoed.strip(), code, waited]
    values, seconds = _timed(run)
    return {"values": values, "seconds": seconds}


# ---- connection pools guarded by locks: 5 connections, many requests; holders yield while holding one ----
class LockedPool:
    """The classic hand-written pool: a threading.Lock around a list, a Condition to wait for a free slot."""

    def __init__(self, make, size):
        self._lock = threading.Lock()
        self._free = threading.Condition(self._lock)
        self._items = [make() for _ in range(size)]

    def get(self):
        with self._lock:
            while not self._items:
                self._free.wait()
            return self._items.pop()

    def put(self, item):
        with self._lock:
            self._items.append(item)
            self._free.notify()


_pools = {}


def _upstream_pool(upstream, kind):
    key = (upstream, kind)
    if key not in _pools:
        host, port = upstream.split("//")[1].split(":")
        if kind == "lock":
            import http.client
            _pools[key] = LockedPool(lambda: http.client.HTTPConnection(host, int(port), timeout=30), 5)
        elif kind == "urllib3":
            import urllib3
            _pools[key] = urllib3.HTTPConnectionPool(host, int(port), maxsize=5, block=True, timeout=30)
        else:
            import sqlalchemy
            from sqlalchemy.pool import QueuePool
            _pools[key] = QueuePool(lambda: __import__("sqlite3").connect(":memory:", check_same_thread=False),
                                    pool_size=5, max_overflow=0, timeout=60)
    return _pools[key]


@case
def pooled(upstream, kind):
    pool = _upstream_pool(upstream, kind)
    if kind == "lock":
        conn = pool.get()
        try:
            conn.request("GET", "/pooled")
            body = conn.getresponse().read().decode()
        finally:
            pool.put(conn)
    elif kind == "urllib3":
        body = pool.request("GET", "/pooled").data.decode()
    else:
        conn = pool.connect()
        try:
            time.sleep(0.01)  # hold the connection across a yield, as real queries over the network do
            body = str(conn.execute("select 1").fetchone()[0])
        finally:
            conn.close()
    return {"body": body}


@case
def https(url, cafile):
    import requests
    return {"body": requests.get(url, verify=cafile, timeout=10).text}


# ---- services (test_services.py) ----
@case
def redis_roundtrip(port, key):
    import redis
    r = _redis(port)
    r.set(key, key.upper())
    blocked = r.blpop("gcorn-nothing-" + key, timeout=1)  # parks this greenlet only, for 1 s on the server
    return {"value": r.get(key).decode(), "blocked": blocked}


def _redis(port):
    import redis
    if ("redis", port) not in _pools:
        _pools["redis", port] = redis.Redis(host="127.0.0.1", port=int(port), socket_timeout=30)
    return _pools["redis", port]


@case
def pg_sleep(port, seconds="0.1"):
    import psycopg2
    conn = psycopg2.connect(host="127.0.0.1", port=int(port), user="postgres", dbname="postgres", connect_timeout=30)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_sleep(%s), pg_backend_pid()", (float(seconds),))
            pid = cur.fetchone()[1]
    finally:
        conn.close()
    return {"backend": pid}


app = overlap.track(_app)  # GET /_overlap: how many requests ran at once
