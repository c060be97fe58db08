# The async worker (-k async): each connection a greenlet; blocking Python yields to the hub.
import asyncio
import http.client
import json
import os
import re
import select
import socket
import subprocess
import threading
import time
import pytest

from conftest import concurrent_gets, peak


@pytest.fixture
def async_server(gcorn):
    def start(*args, **kw):
        return gcorn("asyncapps:app", "-k", "async", *args, **kw)
    return start


def test_gevent_and_eventlet_are_aliases(gcorn):
    for alias in ("gevent", "eventlet"):
        server = gcorn("asyncapps:app", "-k", alias)
        with server.get("/sleep") as r:
            assert r.read() == b"slept"
        assert "Using worker: %s" % alias in server.log()


def test_500_sleeping_clients_take_a_few_sleeps_not_500(async_server):
    server = async_server()
    responses = concurrent_gets(server.port, "/sleep?s=0.05", 500)
    assert all(r.startswith(b"HTTP/1.1 200 OK") and r.endswith(b"slept") for r in responses)
    # The sleeps overlapped in the one worker (serially: one at a time, 25 s).
    assert peak(server) >= 50


def test_wrk_1000_connections_no_socket_errors(async_server):
    server = async_server("--worker-connections", "2000")
    out = subprocess.run(["bash", "-c", "ulimit -n 8192; wrk -t1 -c1000 -d3s --timeout 10s http://127.0.0.1:%d/sleep"
                          % server.port], capture_output=True, text=True, timeout=60).stdout
    assert "Socket errors" not in out, out
    assert "Non-2xx" not in out, out
    assert float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)) > 1000, out


def test_keepalive_reuses_one_connection(async_server):
    server = async_server()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    ports = set()
    for _ in range(20):
        conn.request("GET", "/")
        r = conn.getresponse()
        assert r.read() == b"hello"
        assert r.getheader("Connection") is None
        ports.add(conn.sock.getsockname()[1])
    assert len(ports) == 1
    conn.close()


def test_http10_keepalive_and_close(async_server):
    server = async_server()
    with server.connect() as s:
        s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        time.sleep(0.2)
        first = s.recv(65536)
        assert b"Connection: keep-alive" in first and first.endswith(b"hello")
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")  # 1.0 without keep-alive: closes after the response
        rest = b""
        while chunk := s.recv(65536):
            rest += chunk
        assert b"Connection: close" in rest and rest.endswith(b"hello")


def test_pipelined_requests_answered_in_order(async_server):
    server = async_server()
    reqs = b"".join(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n" for _ in range(2)) + \
        b"GET /sleep?s=0.01 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    data = server.raw(reqs)
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert data.endswith(b"slept")


def test_idle_keepalive_connection_closed_after_keepalive_seconds(async_server):
    server = async_server("--keep-alive", "1")
    with server.connect() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(65536).endswith(b"hello")
        start = time.monotonic()
        s.settimeout(20)  # far beyond the 1 s keep-alive: a timeout here means it was never closed
        assert s.recv(1) == b""  # the server closed the idle connection...
        assert time.monotonic() - start > 0.5  # ...after keeping it a while, not at once


@pytest.mark.parametrize("worker_class", ["async", "gthread"])
def test_idle_connections_time_out_in_turn_while_busy_ones_stay(gcorn, worker_class):
    # Idle keep-alive connections share one timer (the reactor's idle list, oldest first): each one that stays idle
    # is closed after its own keep-alive, whenever it went idle, while one that keeps sending requests, leaving
    # and rejoining the list, is never closed under them.
    server = gcorn("asyncapps:app", "-k", worker_class, "--keep-alive", "2")

    def request(s):
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(65536).endswith(b"hello")

    idle = []
    with server.connect() as busy:
        for _ in range(3):  # idle connections joining the list at different times, the busy one among them
            s = server.connect()
            request(s)
            idle.append(s)
            request(busy)
            time.sleep(0.3)
        for s in idle:
            s.settimeout(20)  # far beyond the 2 s keep-alive: a timeout here means it was never closed
        closed = []
        for _ in range(40):  # a request every 0.25 s, well inside the keep-alive
            request(busy)
            closed = [s for s in idle if select.select([s], [], [], 0)[0] and s.recv(1) == b""]
            if len(closed) == len(idle):
                break
            time.sleep(0.25)
        assert len(closed) == len(idle), "idle connections left open past their keep-alive"
        request(busy)  # still served on the same connection
    for s in idle:
        s.close()


def test_slow_clients_do_not_stop_others(async_server):
    server = async_server("--worker-connections", "2000", "-t", "60")
    slow = []
    try:
        for _ in range(1000):
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # a head that never ends
            slow.append(s)
        # Served while the 1,000 heads are pending: blocked behind them, it would wait for their 60 s head timeout.
        with server.get("/", timeout=20) as r:
            assert r.read() == b"hello"
    finally:
        for s in slow:
            s.close()


def test_worker_connections_caps_concurrency(async_server):
    server = async_server("--worker-connections", "10")
    responses = concurrent_gets(server.port, "/sleep?s=0.2", 30)
    assert all(r.endswith(b"slept") for r in responses)
    with server.get("/peak") as r:
        assert 1 < int(r.read()) <= 10


def test_request_local_state_is_per_greenlet(async_server):
    server = async_server()
    results = {}

    def fetch(v):
        with server.get("/isolation?v=%s" % v) as r:
            results[v] = json.loads(r.read())

    threads = [threading.Thread(target=fetch, args=("v%d" % i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak(server) >= 2  # the requests overlapped, so each one's context and locals were really shared
    for v, got in results.items():
        assert got == {"contextvar": v, "local": v}


def test_outgoing_http_yields(async_server, upstream):
    slow = upstream(0.1, b"upstream")
    server = async_server()
    url = slow.url("localhost") + "/"  # "localhost": DNS on the thread pool
    responses = concurrent_gets(server.port, "/proxy?url=" + url, 200)
    assert all(r.endswith(b"upstream") for r in responses), [r for r in responses if not r.endswith(b"upstream")][:1]
    assert peak(server) >= 20 and slow.peak >= 20  # the calls overlapped: each blocked only its own greenlet


def test_graceful_stop_finishes_in_flight_and_closes_idle(async_server):
    # graceful_timeout and keep-alive both far above the 2 s last call: an idle connection kept for either would
    # time out the client's 20 s read below.
    server = async_server("--graceful-timeout", "60", "--keep-alive", "30")
    idle, last_call = server.connect(), server.connect()
    for s in (idle, last_call):
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(65536).endswith(b"hello")
    busy = server.connect()
    busy.sendall(b"GET /sleep?s=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.2)
    server.proc.send_signal(15)
    server.wait_for_log("Handling signal: term")
    time.sleep(0.3)  # the master has passed TERM on to the worker
    # A request arriving on an idle keep-alive connection after the stop is still answered, with close.
    last_call.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    last_call.settimeout(5)
    answer = b""
    while chunk := last_call.recv(65536):
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in answer
    # An idle one is closed after a short last call (2 s), not the configured 30 s keep-alive.
    idle.settimeout(20)  # the last call is min(keepalive, 2 s): far less than the 30 s keep-alive
    assert idle.recv(1) == b""
    data = b""
    busy.settimeout(5)
    while chunk := busy.recv(65536):
        data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"slept")
    assert b"Connection: close" in data
    assert server.proc.wait(10) == 0


def test_spinning_greenlet_gets_worker_killed_with_its_stack(async_server):
    server = async_server("-t", "2")
    before = server.worker_pids()
    with pytest.raises(OSError):
        with server.get("/spin", timeout=10) as r:
            r.read()
    server.wait_for_log("WORKER TIMEOUT", timeout=10)
    server.wait_for_log('in _app', timeout=10)  # faulthandler's dump names the stuck function
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            with server.get("/pid") as r:
                pid = int(r.read())
            break
        except OSError:
            time.sleep(0.1)
    assert pid not in before


def test_client_disconnect_calls_close_and_frees_greenlet(async_server, tmp_path):
    server = async_server()
    marker = tmp_path / "closed.txt"
    for _ in range(5):
        s = server.connect()
        s.sendall(b"GET /stream?n=100&marker=%s HTTP/1.1\r\nHost: x\r\n\r\n" % str(marker).encode())
        s.recv(100)
        s.close()
    deadline = time.time() + 10
    while time.time() < deadline and (not marker.exists() or marker.read_text().count("closed") < 5):
        time.sleep(0.05)
    assert marker.read_text().count("closed") == 5
    with server.get("/greenlets") as r:
        assert int(r.read()) < 20  # the hub, a few pooled greenlets; not one per dropped client
