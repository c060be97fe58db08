# Request control (issue 13): queue-time shedding (--max-queue-time, %(Q)s), admission (--max-in-flight) and
# memory recycling (--max-worker-memory). Decided by what the server and the app observed.
import json
import time
import urllib.error
import urllib.request

import pytest

from conftest import free_port, get_all, split_response

LEAKY = r"""
import os
leak = []

def app(environ, start_response):
    if environ["PATH_INFO"] == "/leak":
        leak.append(bytearray(os.urandom(1)) * (10 << 20))  # 10 MiB, touched
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d\n" % os.getpid()]
"""

SLEEPY = r"""
import time

def app(environ, start_response):
    time.sleep(0.05)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\n"]
"""

HOLDING = r"""
import json, os, time
active = peak = 0

def app(environ, start_response):
    global active, peak
    if environ["PATH_INFO"] == "/peak":
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"peak": peak}).encode()]
    if not environ["QUERY_STRING"]:  # the fixture's readiness probe
        start_response("200 OK", [])
        return [b""]
    active += 1
    peak = max(peak, active)
    try:
        while not os.path.exists(environ["QUERY_STRING"]):
            time.sleep(0.02)  # cooperative under the async worker
    finally:
        active -= 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\n"]
"""


def scrape(port):
    from prometheus_client.parser import text_string_to_metric_families
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_a_request_that_waited_too_long_is_shed_with_503(gcorn, tmp_path):
    log = tmp_path / "access.log"
    mport = free_port()
    server = gcorn(None, "-k", "sync", "--max-queue-time", "0.5", "--access-logfile", str(log),
                   "--access-logformat", "%(s)s %(Q)s %(U)s", "--metrics-bind", "127.0.0.1:%d" % mport,
                   source=SLEEPY)
    # nginx in front says it received the request 3 s ago (t=${msec}): the app is not called.
    old = server.raw(b"GET /old HTTP/1.1\r\nHost: t\r\nX-Request-Start: t=%.3f\r\n\r\n" % (time.time() - 3))
    status, headers, body = split_response(old)
    assert status.startswith("HTTP/1.1 503") and headers["retry-after"] == ["1"], old
    assert headers["connection"] == ["close"]
    fresh = server.raw(b"GET /fresh HTTP/1.1\r\nHost: t\r\nX-Request-Start: t=%d\r\nConnection: close\r\n\r\n"
                       % int(time.time() * 1e6))
    assert fresh.startswith(b"HTTP/1.1 200")
    deadline = time.time() + 10
    while b"/fresh" not in (text := log.read_bytes()) and time.time() < deadline:
        time.sleep(0.05)
    lines = {line.split()[2]: line.split() for line in text.decode().splitlines() if "__ready__" not in line}
    assert lines["/old"][0] == "503" and float(lines["/old"][1]) >= 2.9
    assert lines["/fresh"][0] == "200" and float(lines["/fresh"][1]) < 0.5
    assert scrape(mport)[("gcorn_http_requests_shed_total", ())] == 1


def test_a_flood_sheds_instead_of_serving_stale_requests(gcorn, tmp_path):
    """gthread with 2 threads, an app that takes 50 ms, 120 requests at once: those that queued past 0.5 s get
    503 with Retry-After, and every request the app served had waited at most 0.5 s (%(Q)s)."""
    log = tmp_path / "access.log"
    server = gcorn(None, "-k", "gthread", "--threads", "2", "--max-queue-time", "0.5", "--access-logfile",
                   str(log), "--access-logformat", "%(s)s %(Q)s", "--backlog", "512", source=SLEEPY)
    responses = get_all(server.port, ["/"] * 120, timeout=120)
    statuses = [r.split(b" ", 2)[1] for r in responses]
    assert statuses.count(b"503") > 0 and statuses.count(b"200") > 0, statuses
    assert all(b"Retry-After: 1" in r for r in responses if r.split(b" ", 2)[1] == b"503")
    deadline = time.time() + 10
    while len(log.read_text().splitlines()) < 121 and time.time() < deadline:
        time.sleep(0.05)
    served = [float(q) for s, q in (line.split() for line in log.read_text().splitlines()) if s == "200"]
    shed = [float(q) for s, q in (line.split() for line in log.read_text().splitlines()) if s == "503"]
    assert len(shed) == statuses.count(b"503")
    assert served and max(served) <= 0.5, max(served)
    assert min(shed) > 0.5


def test_max_in_flight_stops_accepting_above_n(gcorn, tmp_path):
    release = tmp_path / "release"
    server = gcorn(None, "-k", "async", "--max-in-flight", "2", source=HOLDING)
    import threading
    results = []
    threads = [threading.Thread(target=lambda: results.extend(get_all(server.port, ["/h?" + str(release)])))
               for _ in range(5)]
    for t in threads:
        t.start()
    time.sleep(1.0)  # give the worker every chance to take more than 2 (it must not)
    release.touch()
    for t in threads:
        t.join(60)
    assert len(results) == 5 and all(r.startswith(b"HTTP/1.1 200") for r in results)
    with server.get("/peak") as r:
        assert json.loads(r.read())["peak"] == 2


def test_without_max_in_flight_they_all_run_at_once(gcorn, tmp_path):
    release = tmp_path / "release"
    server = gcorn(None, "-k", "async", source=HOLDING)
    import threading
    results = []
    threads = [threading.Thread(target=lambda: results.extend(get_all(server.port, ["/h?" + str(release)])))
               for _ in range(5)]
    for t in threads:
        t.start()
    deadline = time.time() + 30
    while time.time() < deadline:
        with server.get("/peak") as r:
            if json.loads(r.read())["peak"] == 5:
                break
        time.sleep(0.05)
    release.touch()
    for t in threads:
        t.join(60)
    with server.get("/peak") as r:
        assert json.loads(r.read())["peak"] == 5


def test_a_leaking_worker_is_recycled_without_failing_a_request(gcorn):
    mport = free_port()
    server = gcorn(None, "-k", "sync", "--max-worker-memory", "200", "--metrics-bind", "127.0.0.1:%d" % mport,
                   source=LEAKY)
    pids = set()
    for _ in range(40):  # 400 MiB leaked in all
        with server.get("/leak") as r:
            assert r.status == 200
            pids.add(int(r.read()))
    assert len(pids) >= 2  # replaced at least once
    assert "more than max_worker_memory (200 MiB): restarting after current requests" in server.log()
    deadline = time.time() + 10
    while scrape(mport).get(("gcorn_worker_restarts_total", (("cause", "memory"),)), 0) < 1:
        assert time.time() < deadline
        time.sleep(0.05)


DEADLINE_APP = r"""
import os, time

def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/slow":
        time.sleep(10)  # the frame the timeout names
    elif path == "/extended":
        environ["gcorn.deadline"](30)  # this one may take longer than --request-timeout
        time.sleep(1.5)
    elif path == "/spin":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"%d\n" % os.getpid()]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d\n" % os.getpid()]
"""


@pytest.mark.parametrize("worker", ["sync", "gthread", "async"])
def test_a_request_past_its_deadline_gets_504_and_the_worker_lives_on(gcorn, worker):
    mport = free_port()
    server = gcorn(None, "-k", worker, "--threads", "4", "--request-timeout", "1", "--metrics-bind",
                   "127.0.0.1:%d" % mport, source=DEADLINE_APP)
    with server.get("/pid") as r:
        pid = int(r.read())
    import threading
    outcome = {}

    def slow():
        try:
            server.get("/slow", timeout=30)
            outcome["status"] = 200
        except urllib.error.HTTPError as e:
            outcome["status"] = e.code
            outcome["body"] = e.read()

    t = threading.Thread(target=slow)
    t.start()
    if worker != "sync":  # a concurrent fast request on the same worker is served meanwhile
        with server.get("/pid") as r:
            assert int(r.read()) == pid
    t.join(30)
    assert outcome["status"] == 504, outcome
    assert b"Gateway Timeout" in outcome["body"]
    with server.get("/pid") as r:
        assert int(r.read()) == pid  # the same worker
    server.wait_for_log("Request timeout:")
    log = server.log()
    assert "GET /slow" in log and "time.sleep(10)" in log, log
    assert "WORKER TIMEOUT" not in log
    deadline = time.time() + 10
    while scrape(mport).get(("gcorn_http_request_timeouts_total", ()), 0) != 1:
        assert time.time() < deadline
        time.sleep(0.05)


@pytest.mark.parametrize("worker", ["sync", "async"])
def test_the_app_may_move_its_deadline(gcorn, worker):
    server = gcorn(None, "-k", worker, "--request-timeout", "1", source=DEADLINE_APP)
    with server.get("/extended", timeout=30) as r:
        assert r.status == 200
    assert "Request timeout" not in server.log()


KEEPER_APP = r"""
kept = {}

def app(environ, start_response):
    if environ["PATH_INFO"] == "/keep":
        kept["deadline"] = environ["gcorn.deadline"]
        kept["start_response"] = start_response
        kept["hints"] = environ["wsgi.early_hints"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"kept"]
    results = []
    for name, call in [("deadline", lambda: kept["deadline"](5)),
                       ("start_response", lambda: kept["start_response"]("200 OK", [])),
                       ("hints", lambda: kept["hints"]([]))]:
        try:
            call()
            results.append(name + ": called")
        except RuntimeError as e:
            results.append(name + ": " + str(e))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["\n".join(results).encode()]
"""


# An app may keep the request's callables past it; a later call raises instead of reaching a finished request
# (gcorn.deadline's did not: it reached freed memory).
@pytest.mark.parametrize("worker", ["sync", "gthread", "async"])
def test_callables_kept_past_their_request_raise(gcorn, worker):
    server = gcorn(None, "-k", worker, "--request-timeout", "30", source=KEEPER_APP)
    for _ in range(3):  # the kept objects are never handed to a later request
        with server.get("/keep") as r:
            assert r.read() == b"kept"
        with server.get("/stale") as r:
            lines = r.read().decode().splitlines()
        assert lines == ["%s: this object belonged to a finished request" % n
                         for n in ("deadline", "start_response", "hints")]


BLOCKING = r"""
import ctypes, os
libc = ctypes.CDLL(None)

def app(environ, start_response):
    if environ["PATH_INFO"] == "/block":
        libc.usleep(300000)  # a C call that blocks without yielding to the hub
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d\n" % os.getpid()]
"""


def test_a_greenlet_blocking_the_hub_is_reported_once_with_its_request_and_stack(gcorn):
    server = gcorn(None, "-k", "async", source=BLOCKING)
    paths = ["/short%d" % i for i in range(50)] + ["/block"] + ["/short%d" % i for i in range(50, 100)]
    responses = get_all(server.port, paths, timeout=60)
    assert len(responses) == 101 and all(r.startswith(b"HTTP/1.1 200") for r in responses)
    server.wait_for_log("The event loop has been blocked")
    log = server.log()
    assert log.count("The event loop has been blocked") == 1, log
    report = log[log.index("The event loop has been blocked"):]
    assert "by GET /block" in report.splitlines()[0]
    assert "libc.usleep(300000)" in report


def test_block_warning_zero_turns_the_watchdog_off(gcorn):
    server = gcorn(None, "-k", "async", "--block-warning", "0", source=BLOCKING)
    with server.get("/block") as r:
        assert r.status == 200
    time.sleep(0.5)  # the watchdog, if it ran, reports 100 ms into the block
    assert "blocked" not in server.log()


STUCK = r"""
import ctypes, time
libc = ctypes.CDLL(None)

def app(environ, start_response):
    if environ["PATH_INFO"] == "/stuck":
        time.sleep(0.5)           # cooperative: /later starts meanwhile
        libc.usleep(20 * 10**6)   # then the hub is held past the worker timeout
    elif environ["PATH_INFO"] == "/later":
        time.sleep(30)
    start_response("200 OK", [])
    return [b""]
"""


def test_worker_timeout_names_the_request_that_blocks_the_hub(gcorn):
    server = gcorn(None, "-k", "async", "--timeout", "2", source=STUCK)
    import threading

    def get(path):
        try:
            server.get(path, timeout=60)
        except OSError:
            pass

    threads = [threading.Thread(target=get, args=("/stuck",), daemon=True)]
    threads[0].start()
    time.sleep(0.1)
    threads.append(threading.Thread(target=get, args=("/later",), daemon=True))
    threads[1].start()  # the latest request started; /stuck is the one holding the hub
    server.wait_for_log("WORKER TIMEOUT", timeout=30)
    line = next(l for l in server.log().splitlines() if "WORKER TIMEOUT" in l)
    assert line.endswith("serving GET /stuck"), line


BUSY = r"""
import time

def app(environ, start_response):
    environ["wsgi.input"].read()
    if environ["PATH_INFO"] == "/busy":
        end = time.perf_counter() + 1.5
        while time.perf_counter() < end:  # CPU-bound: the hub polls nothing meanwhile
            pass
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
"""


def test_a_request_that_came_during_a_busy_app_is_not_shed_for_the_apps_time(gcorn, tmp_path):
    """A keep-alive request sent while the app was busy with the previous one on its connection waits from the end
    of that request, not from the last poll before it: the busy 1.5 s must not count as its queue time."""
    import socket
    log = tmp_path / "access.log"
    server = gcorn(None, "-k", "async", "--max-queue-time", "1", "--access-logfile", str(log),
                   "--access-logformat", "%(U)s %(s)s %(Q)s", source=BUSY)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(b"POST /busy HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        time.sleep(0.5)  # the app is in its busy loop
        s.sendall(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while data.count(b"HTTP/1.1 ") < 2 or not data.endswith(b"ok"):
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
    import re
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", data) == [b"200", b"200"], data
    deadline = time.time() + 10
    while len(log.read_text().splitlines()) < 3 and time.time() < deadline:
        time.sleep(0.05)
    lines = [l.split() for l in log.read_text().splitlines() if l.startswith("/next")]
    assert lines and lines[0][1] == "200" and float(lines[0][2]) < 1, lines
