# The gthread worker (-k gthread, or --threads N > 1): a pool of threads per process runs requests, idle
# keep-alive connections wait on the worker's reactor without holding a thread.
import asyncio
import http.client
import json
import resource
import signal
import socket
import threading
import time

import pytest

from conftest import concurrent_gets, peak

APP = r'''
import json, os, threading, time

import overlap

ticks = 0

def _tick():  # a plain Python thread, which must keep running while the worker idles
    global ticks
    while True:
        time.sleep(0.01)
        ticks += 1

threading.Thread(target=_tick, daemon=True).start()

def _app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/sleep":
        time.sleep(float(environ.get("QUERY_STRING") or 0.25))
    if path == "/ticks":
        body = str(ticks)
    else:
        body = json.dumps({"thread": threading.get_ident(), "pid": os.getpid(), "port": environ.get("REMOTE_PORT"),
                           "multithread": environ["wsgi.multithread"], "scheme": environ["wsgi.url_scheme"]})
    body = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]

app = overlap.track(_app)
'''


@pytest.fixture
def gthread(gcorn):
    def start(*args, **kw):
        return gcorn(None, "-k", "gthread", *args, source=APP, **kw)
    return start


def body_of(response):
    return response.split(b"\r\n\r\n", 1)[1]


def read_response(sock):
    """One response with a Content-Length from a keep-alive socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "connection closed"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(next(l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")).split(b":")[1])
    while len(body) < length:
        body += sock.recv(65536)
    return head, body


def test_threads_above_one_select_gthread(gcorn):
    server = gcorn(None, "--threads", "4", source=APP)
    assert "Using worker: gthread" in server.log()
    with server.get("/") as r:
        assert json.loads(r.read())["multithread"] is True


def test_64_slow_requests_with_16_threads_take_4_rounds(gthread):
    server = gthread("--threads", "16")
    responses = concurrent_gets(server.port, "/sleep?0.25", 64)
    assert all(r.startswith(b"HTTP/1.1 200 OK") for r in responses)
    threads = {json.loads(body_of(r))["thread"] for r in responses}
    assert 8 <= len(threads) <= 16, threads
    # Up to 16 at once, never more: the pool's threads are the limit (serially it would be one).
    assert 8 <= peak(server) <= 16


def test_keepalive_reuses_one_connection(gthread):
    server = gthread("--threads", "4")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    ports = set()
    for _ in range(20):
        conn.request("GET", "/")
        r = conn.getresponse()
        info = json.loads(r.read())
        assert r.getheader("Connection") is None
        ports.add(info["port"])
        assert int(info["port"]) == conn.sock.getsockname()[1]
    assert len(ports) == 1
    conn.close()


def test_5000_idle_keepalive_connections_do_not_hold_threads(gthread):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 6000:
        pytest.skip("needs 6000 file descriptors")
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(12000, hard) if hard != resource.RLIM_INFINITY else 12000, hard))
    server = gthread("--threads", "2", "--worker-connections", "6000", "--keep-alive", "60")
    idle = []
    try:
        # Each connection makes one request and then stays open, idle, in batches (the listen backlog).
        for _ in range(10):
            batch = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(500)]
            for s in batch:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            for s in batch:
                read_response(s)
            idle += batch
        # With 5,000 idle connections each holding a thread, this request would find none free.
        with server.get("/", timeout=20) as r:
            assert json.loads(r.read())["multithread"]
        # The idle connections were kept (on the reactor), not closed: they still answer.
        for s in idle[::1000]:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"200 OK" in read_response(s)[0]
        worker = server.worker_pids()[0]
        threads = int(next(l for l in open("/proc/%d/status" % worker) if l.startswith("Threads:")).split()[1])
        assert threads <= 2 + 3, threads  # main + pool (+ the app's ticker thread)
    finally:
        for s in idle:
            s.close()


def test_python_threads_run_while_the_worker_idles(gthread):
    server = gthread()
    with server.get("/ticks") as r:
        before = int(r.read())
    time.sleep(0.5)
    with server.get("/ticks") as r:
        after = int(r.read())
    assert after - before >= 20, (before, after)  # the main thread releases the GIL around the reactor


def test_graceful_stop_finishes_in_flight_requests(gthread):
    server = gthread("--threads", "2")
    results = []
    t = threading.Thread(target=lambda: results.append(concurrent_gets(server.port, "/sleep?1", 2)))
    t.start()
    time.sleep(0.3)
    server.proc.send_signal(signal.SIGTERM)
    t.join(10)
    assert server.proc.wait(10) == 0
    assert len(results) == 1 and all(r.startswith(b"HTTP/1.1 200 OK") for r in results[0]), results
    assert all(b"Connection: close" in r for r in results[0])


def test_slow_request_is_not_a_worker_timeout(gthread):
    # As Gunicorn's gthread worker: the heartbeat comes from the reactor, not from the request threads.
    server = gthread("--threads", "2", "--timeout", "1")
    pid = server.worker_pids()
    with server.get("/sleep?2.5") as r:
        assert r.status == 200
    assert server.worker_pids() == pid
    assert "WORKER TIMEOUT" not in server.log()


def test_max_requests_restarts_the_worker(gthread):
    server = gthread("--threads", "2", "--max-requests", "3")
    pids = set()
    for _ in range(8):
        with server.get("/") as r:
            pids.add(json.loads(r.read())["pid"])
    assert len(pids) >= 2
    server.wait_for_log("Autorestarting worker")


def test_worker_connections_bounds_open_connections(gthread):
    server = gthread("--threads", "4", "--worker-connections", "3", "--keep-alive", "30")
    held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
    try:
        for s in held:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            read_response(s)
        # A fourth connection waits in the listen queue until one of the three closes.
        late = socket.create_connection(("127.0.0.1", server.port), timeout=0.5)
        late.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        with pytest.raises(socket.timeout):
            late.recv(1)
        held.pop().close()
        late.settimeout(5)
        assert b"200 OK" in read_response(late)[0]
        late.close()
    finally:
        for s in held:
            s.close()
