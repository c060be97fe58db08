# gcorn.gevent.loop (issue 15, item 3): gevent programs run on gcorn's reactor outside the server, with
# GEVENT_LOOP=gcorn.gevent.loop and the `_gcorn` extension module. Each program asserts on what it observed
# (how many greenlets were inside a wait at once, what arrived), never on the wall clock.
import os
import subprocess
import textwrap

import pytest

from conftest import GCORN

BUILD_DIR = os.path.dirname(GCORN)  # _gcorn.cpython-*.so is built next to the binary
PYTHON_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "python")

pytest.importorskip("gevent")


def run_program(tmp_path, *parts, timeout=60):
    source = "\n".join(textwrap.dedent(p) for p in parts)
    path = tmp_path / "prog.py"
    path.write_text(source)
    env = dict(os.environ, GEVENT_LOOP="gcorn.gevent.loop",
               PYTHONPATH=os.pathsep.join([BUILD_DIR, os.path.abspath(PYTHON_DIR)]))
    r = subprocess.run(["/usr/bin/python3", str(path)], capture_output=True, text=True, timeout=timeout, env=env,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


OVERLAP = """
import gevent
active = peak = 0

def overlapping(wait, *args):
    global active, peak
    active += 1
    peak = max(peak, active)
    try:
        return wait(*args)
    finally:
        active -= 1
"""


def test_the_hub_runs_on_gcorns_loop(tmp_path):
    out = run_program(tmp_path, OVERLAP, """
    print(type(gevent.get_hub().loop).__module__)
    gevent.joinall([gevent.spawn(overlapping, gevent.sleep, 0.2) for _ in range(5)], raise_error=True)
    print("peak", peak)
    """)
    assert out.split() == ["gcorn.gevent._loop", "peak", "5"]


def test_gevent_api_pool_queue_timeout_event_lock_local(tmp_path):
    out = run_program(tmp_path, OVERLAP, """
    from gevent.pool import Pool
    from gevent.queue import Queue
    from gevent.event import Event
    from gevent.lock import Semaphore
    from gevent.local import local

    assert sorted(Pool(3).imap_unordered(lambda x: overlapping(gevent.sleep, 0.05) or x, range(9))) == list(range(9))
    print("pool peak", peak)

    q = Queue()
    for i in range(3):
        gevent.spawn_later(0.01 * (3 - i), q.put, i)
    print("queue", [q.get(timeout=5) for _ in range(3)])

    with gevent.Timeout(0.05, False):
        gevent.sleep(30)
        print("not reached")
    try:
        with gevent.Timeout(0.05):
            gevent.sleep(30)
    except gevent.Timeout:
        print("timeout raised")

    ev, seen = Event(), []
    waiters = [gevent.spawn(lambda n: (ev.wait(), seen.append(n)), n) for n in range(3)]
    gevent.sleep(0)
    ev.set()
    gevent.joinall(waiters, raise_error=True)
    print("event", sorted(seen))

    sem, inside, most = Semaphore(2), [0], [0]
    def guarded():
        with sem:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            gevent.sleep(0.02)
            inside[0] -= 1
    gevent.joinall([gevent.spawn(guarded) for _ in range(6)], raise_error=True)
    print("semaphore", most[0])

    data = local()
    def own(n):
        data.n = n
        gevent.sleep(0.01)
        return data.n
    print("local", [g.get() for g in [gevent.spawn(own, n) for n in range(3)]])
    """)
    assert out.splitlines() == ["pool peak 3", "queue [2, 1, 0]", "timeout raised", "event [0, 1, 2]", "semaphore 2",
                                "local [0, 1, 2]"]


def test_a_monkey_patched_program(tmp_path):
    out = run_program(tmp_path, """
    from gevent import monkey
    monkey.patch_all()
    import gevent, socket, subprocess, threading, time, urllib.request
    from http.server import HTTPServer, BaseHTTPRequestHandler

    active = peak = 0
    lock = threading.Lock()

    def sleeper():
        global active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.1)  # patched: parks on the hub
        with lock:
            active -= 1

    threads = [threading.Thread(target=sleeper) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("threads peak", peak)

    class Slow(BaseHTTPRequestHandler):
        def do_GET(self):
            time.sleep(0.1)
            body = self.path.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a):
            pass

    server = HTTPServer(("127.0.0.1", 0), Slow)
    gevent.spawn(server.serve_forever)
    port = server.server_address[1]
    fetch = lambda p: urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, p), timeout=10).read()
    print("urllib", fetch("/one"))

    a, b = socket.socketpair()
    reader = gevent.spawn(a.recv, 5)
    gevent.sleep(0.01)
    b.sendall(b"hello")
    print("socket", reader.get(timeout=5))

    out = subprocess.run(["echo", "from a child"], capture_output=True, check=True).stdout
    print("subprocess", out.strip())
    print("dns", socket.gethostbyname("localhost"))
    """)
    assert out.splitlines() == ["threads peak 4", "urllib b'/one'", "socket b'hello'", "subprocess b'from a child'",
                                "dns 127.0.0.1"]


def test_gevents_monitor_thread_reports_a_blocked_hub(tmp_path):
    """gevent's monitor thread (config.monitor_thread) watches the hub on gcorn's loop from its own thread: a
    greenlet that spins without yielding is reported with its stack."""
    out = run_program(tmp_path, """
        import io, sys, time, gevent
        from gevent import config
        config.monitor_thread = True
        config.max_blocking_time = 0.05
        hub = gevent.get_hub()
        assert type(hub.loop).__module__ == "gcorn.gevent._loop", type(hub.loop)
        report = io.StringIO()
        hub.exception_stream = report
        hub.start_periodic_monitoring_thread()
        gevent.sleep(0.2)
        spins = 0
        while "appears to be blocked" not in report.getvalue() and spins < 200:
            time.sleep(0.05)  # not monkey-patched here: holds the hub without yielding
            spins += 1
        gevent.sleep(0.2)
        text = report.getvalue()
        assert "appears to be blocked" in text and "holds the hub without yielding" in text, text
        print("reported")
    """)
    assert "reported" in out
