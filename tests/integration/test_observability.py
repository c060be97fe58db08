# Seeing inside a running gcorn (issue 12): the master's Prometheus metrics and /healthz on --metrics-bind, the
# control socket and `gcorn ctl`. Every count is checked against the requests the test sent, across worker
# restarts of every kind; nothing is decided by the wall clock.
import collections
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import GCORN, free_port
from test_arbiter import wait_until

APP = r"""
import os, time

def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/sleep":
        time.sleep(30)
    elif path == "/hold":  # until the test creates the file it names
        while not os.path.exists(environ["QUERY_STRING"]):
            time.sleep(0.02)
    status = "404 Not Found" if path == "/missing" else "200 OK"
    start_response(status, [("Content-Type", "text/plain"), ("X-Worker", str(os.getpid()))])
    return [b"ok\n"]
"""


class Metrics:
    """The master's /metrics, parsed by prometheus_client's own parser."""

    def __init__(self, port):
        self.port = port

    def scrape(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.port, timeout=10) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = r.read().decode()
        samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return samples

    @staticmethod
    def value(samples, name, **labels):
        return samples.get((name, tuple(sorted(labels.items()))), 0)

    @staticmethod
    def total(samples, name, **labels):
        """Sum over every series of `name` whose labels include `labels`."""
        want = set(labels.items())
        return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))

    def requests(self, samples=None):
        return self.total(samples or self.scrape(), "gcorn_http_requests_total")

    def wait(self, check, what, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            samples = self.scrape()
            if check(samples):
                return samples
            time.sleep(0.05)
        raise AssertionError("%s never happened; last scrape: %r" % (what, samples))


def health(port):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def ctl(sock, *words, check=True):
    r = subprocess.run([GCORN, "ctl", "-s", str(sock), *words], capture_output=True, text=True, timeout=30)
    if check:
        assert r.returncode == 0, (words, r.returncode, r.stdout, r.stderr)
    return r


def send_line(sock, data, timeout=10):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(str(sock))
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


def start(gcorn, *args, metrics=True):
    port = free_port()
    extra = ["--metrics-bind", "127.0.0.1:%d" % port] if metrics else []
    server = gcorn(None, *extra, *args, source=APP)
    m = Metrics(port)
    if metrics:  # the fixture's readiness probe is one request: counted once its response is on its way
        m.wait(lambda s: m.requests(s) == 1, "the readiness probe counted")
    return server, m


def get_status(server, path):
    try:
        with server.get(path) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def get_served(server, path):
    """The status and the pid of the worker that answered."""
    try:
        with server.get(path) as r:
            return r.status, int(r.headers["X-Worker"])
    except urllib.error.HTTPError as e:
        return e.code, int(e.headers["X-Worker"])


@pytest.mark.parametrize("worker", ["sync", "async"])
def test_totals_survive_ttou_hup_sigkill_and_max_requests(gcorn, worker):
    server, m = start(gcorn, "-k", worker, "-w", "2", "--max-requests", "7")
    s = m.wait(lambda s: Metrics.value(s, "gcorn_workers_booted") == 2, "two workers booted")
    first = s
    base = m.requests(s)  # the fixture's readiness probe
    sent = 0
    served = collections.Counter()  # requests each worker answered

    def burst(n=10):
        nonlocal sent
        for i in range(n):
            status, pid = get_served(server, "/missing" if i % 5 == 4 else "/x%d" % i)
            assert status == (404 if i % 5 == 4 else 200)
            served[pid] += 1
        sent += n
        return m.wait(lambda s: m.requests(s) == base + sent, "%d requests counted" % (base + sent))

    burst()
    server.proc.send_signal(signal.SIGTTOU)
    s = m.wait(lambda s: Metrics.value(s, "gcorn_worker_restarts_total", cause="scale_down") == 1, "TTOU's exit")
    burst()
    old = set(server.worker_pids())
    server.proc.send_signal(signal.SIGHUP)
    # HUP re-reads the configuration: `workers` is 2 again (Gunicorn's), TTOU's change is gone. The old worker
    # stops once a new one has booted (cause reload), unless max_requests ended it first.
    wait_until(lambda: len(server.worker_pids()) == 2 and not set(server.worker_pids()) & old)
    m.wait(lambda s: Metrics.value(s, "gcorn_worker_restarts_total", cause="reload") <= 1
           and Metrics.value(s, "gcorn_workers") == 2 and Metrics.value(s, "gcorn_workers_booted") == 2, "HUP's swap")
    burst()
    # A worker leaves after its 7th request, and once it has told the master so, a SIGKILL does not make its exit a
    # crash: kill one that has answered fewer (every worker now was forked after the HUP, so `served` is exact).
    victim = next(pid for pid in server.worker_pids() if 0 < served[pid] < 7)
    os.kill(victim, signal.SIGKILL)
    m.wait(lambda s: Metrics.value(s, "gcorn_worker_restarts_total", cause="crash") == 1
           and Metrics.value(s, "gcorn_workers_booted") == 2, "the killed worker replaced")
    s = burst()

    total = base + sent
    assert m.requests(s) == total
    assert m.total(s, "gcorn_http_requests_total", status="4xx") == sent // 5
    assert m.value(s, "gcorn_http_requests_total", method="GET", status="2xx") == total - sent // 5
    for h in ("gcorn_http_request_duration_seconds", "gcorn_http_app_duration_seconds",
              "gcorn_http_request_queue_seconds"):
        assert m.value(s, h + "_count") == total, h
        assert m.value(s, h + "_bucket", le="+Inf") == total, h
        assert m.value(s, h + "_sum") > 0, h
    # 40 requests over workers recycled after 7 each: max_requests exits were counted too.
    assert m.value(s, "gcorn_worker_restarts_total", cause="max_requests") >= 1
    assert m.value(s, "gcorn_connections_dropped_total") == 0
    assert m.value(s, "gcorn_http_response_bytes_total") == total * 3
    # (the fixture's readiness check also opened a connection that sent nothing)
    assert m.value(s, "gcorn_connections_accepted_total") - m.value(first, "gcorn_connections_accepted_total") == sent
    assert m.value(s, "gcorn_workers_target") == 2


def test_a_request_cut_by_a_crash_is_counted_as_dropped(gcorn, tmp_path):
    server, m = start(gcorn, "-k", "gthread", "--threads", "4", "-w", "1")
    result = {}

    def hold():
        try:
            get_status(server, "/hold?" + str(tmp_path / "never"))
            result["outcome"] = "answered"
        except (OSError, urllib.error.URLError) as e:
            result["outcome"] = repr(e)

    t = threading.Thread(target=hold)
    t.start()
    m.wait(lambda s: Metrics.value(s, "gcorn_http_requests_in_flight") == 1, "the request in flight")
    os.kill(server.worker_pids()[0], signal.SIGKILL)
    t.join(30)
    s = m.wait(lambda s: Metrics.value(s, "gcorn_connections_dropped_total") == 1, "the cut request counted")
    assert result["outcome"] != "answered"
    assert m.value(s, "gcorn_worker_restarts_total", cause="crash") == 1
    assert m.value(s, "gcorn_http_requests_in_flight") == 0


def test_keepalive_reuse_bytes_and_a_trusted_proxys_queue_time(gcorn):
    server, m = start(gcorn, "-k", "async")
    base = m.scrape()
    # Three requests on one connection; the first says the front end received it 2.5 s ago (nginx's t=${msec}).
    sent_at = time.time() - 2.5
    with server.connect() as c:
        c.sendall(b"GET /a HTTP/1.1\r\nHost: t\r\nX-Request-Start: t=%.3f\r\n\r\n" % sent_at)
        for _ in range(2):
            c.sendall(b"GET /b HTTP/1.1\r\nHost: t\r\n\r\n")
        c.sendall(b"GET /c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := c.recv(65536):
            data += chunk
    assert data.count(b"HTTP/1.1 200") == 4
    s = m.wait(lambda s: m.requests(s) == m.requests(base) + 4, "4 requests counted")
    assert m.value(s, "gcorn_http_keepalive_reused_total") - m.value(base, "gcorn_http_keepalive_reused_total") == 3
    # The proxy's clock says 2.5 s: the one request lands above the 1 s bucket, the others below it.
    slow = m.value(s, "gcorn_http_request_queue_seconds_bucket", le="+Inf") - \
        m.value(s, "gcorn_http_request_queue_seconds_bucket", le="1.0")
    assert slow == 1
    assert m.value(s, "gcorn_http_request_queue_seconds_sum") >= 2.4
    received = m.value(s, "gcorn_http_request_bytes_total") - m.value(base, "gcorn_http_request_bytes_total")
    assert received == 4 * len(b"GET /b HTTP/1.1\r\nHost: t\r\n\r\n") + len(b"X-Request-Start: t=%.3f\r\n" % sent_at) + \
        len(b"Connection: close\r\n")


def test_x_request_start_from_an_untrusted_peer_is_ignored(gcorn):
    server, m = start(gcorn, "-k", "sync", "--forwarded-allow-ips", "10.9.9.9")
    base = m.scrape()
    server.raw(b"GET / HTTP/1.1\r\nHost: t\r\nX-Request-Start: t=%d\r\nConnection: close\r\n\r\n"
               % int((time.time() - 100) * 1e6))
    s = m.wait(lambda s: m.requests(s) == m.requests(base) + 1, "the request counted")
    assert m.value(s, "gcorn_http_request_queue_seconds_sum") < 50


def test_healthz_turns_503_when_a_graceful_stop_begins(gcorn, tmp_path):
    server, m = start(gcorn, "-k", "gthread", "--threads", "2", "--graceful-timeout", "60")
    assert health(m.port) == 200
    release = tmp_path / "release"
    outcome = {}
    t = threading.Thread(target=lambda: outcome.update(status=get_status(server, "/hold?" + str(release))))
    t.start()
    m.wait(lambda s: Metrics.value(s, "gcorn_http_requests_in_flight") == 1, "the slow request in flight")
    server.proc.send_signal(signal.SIGTERM)
    deadline = time.time() + 30
    while health(m.port) != 503:
        assert time.time() < deadline, "healthz never turned 503"
        time.sleep(0.02)
    # Draining: the slow request is still running, the metrics listener still answers.
    s = m.scrape()
    assert m.value(s, "gcorn_http_requests_in_flight") == 1
    assert t.is_alive() and "status" not in outcome
    release.touch()
    t.join(30)
    assert outcome["status"] == 200
    assert server.proc.wait(30) == 0
    s_exit = open(server.log_path).read()
    assert "Shutting down: Master" in s_exit


def test_healthz_and_404_on_the_metrics_listener_only(gcorn):
    server, m = start(gcorn, "-k", "sync")
    assert get_status(server, "/metrics") == 200  # the app's port serves the app, never the metrics
    with server.get("/metrics") as r:
        assert r.read() == b"ok\n"
    try:
        urllib.request.urlopen("http://127.0.0.1:%d/other" % m.port, timeout=10)
        raise AssertionError("expected 404")
    except urllib.error.HTTPError as e:
        assert e.code == 404
    req = urllib.request.Request("http://127.0.0.1:%d/metrics" % m.port, method="POST", data=b"x")
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("expected 405")
    except urllib.error.HTTPError as e:
        assert e.code == 405
    # Garbage on the metrics port gets closed; the master goes on serving.
    with socket.create_connection(("127.0.0.1", m.port), timeout=10) as c:
        c.sendall(b"\x00\xff garbage\r\n\r\n")
        assert c.recv(100) == b""
    assert health(m.port) == 200


@pytest.mark.parametrize("worker", ["sync", "gthread", "async"])
def test_ctl_status_and_stack_show_a_request_asleep(gcorn, tmp_path, worker):
    sock = tmp_path / "ctl.sock"
    server, m = start(gcorn, "-k", worker, "--threads", "4", "--control-socket", str(sock), metrics=False)
    assert oct(os.stat(sock).st_mode & 0o777) == "0o600"
    def asleep():
        try:
            get_status(server, "/sleep")
        except OSError:  # cut by the quick stop below
            pass

    t = threading.Thread(target=asleep, daemon=True)
    t.start()
    deadline = time.time() + 30
    while "GET /sleep" not in (out := ctl(sock, "status").stdout):
        assert time.time() < deadline, out
        time.sleep(0.05)
    row = next(line for line in out.splitlines() if "GET /sleep" in line)
    pid = int(row.split()[0])
    assert pid in server.worker_pids() and "busy" in row
    assert row.rstrip().endswith("s)")  # its age: "GET /sleep (1.2s)"
    stats = json.loads(ctl(sock, "stats", "--json").stdout)
    w = next(w for w in stats["workers"] if w["pid"] == pid)
    assert w["request"] == "GET /sleep" and w["in_flight"] == 1 and w["request_seconds"] >= 0
    assert w["rss_bytes"] > 1 << 20
    stack = ctl(sock, "stack", str(pid)).stdout
    assert "inline_app.py" in stack and "time.sleep(30)" in stack, stack
    if worker == "async":  # the frame is the parked greenlet's that serves the request
        section = stack[stack.index("Greenlet"):]
        assert "time.sleep(30)" in section, stack
    # A garbage line gets one error line; the master goes on answering and serving.
    reply = send_line(sock, b"\x00\xff\xfe garbage\n")
    assert reply.startswith(b"error: unknown command") and reply.count(b"\n") == 1
    assert send_line(sock, b"x" * 10000).startswith(b"error: command line too long")
    r = ctl(sock, "stack", "1", check=False)
    assert r.returncode == 1 and "not the pid of one of this master's workers" in r.stderr
    r = ctl(sock, "workers", "add", "lots", check=False)
    assert r.returncode == 1 and r.stderr.startswith("error:")
    if worker != "sync":  # the sync worker is busy with the sleeping request
        assert get_status(server, "/") == 200
    server.stop(signal.SIGQUIT)  # quick: the sleeping request is cut


def test_one_silent_client_does_not_stall_the_control_socket(gcorn, tmp_path):
    sock = tmp_path / "ctl.sock"
    server, m = start(gcorn, "-k", "async", "--control-socket", str(sock))
    silent = socket.socket(socket.AF_UNIX)
    silent.connect(str(sock))
    silent.sendall(b"sta")  # and never the rest
    try:
        assert "1 workers" in ctl(sock, "status").stdout
        assert health(m.port) == 200
    finally:
        silent.close()


def test_ctl_workers_reload_reopen_and_stop(gcorn, tmp_path):
    sock = tmp_path / "ctl.sock"
    (tmp_path / "c.toml").write_text('control_socket = "%s"\n' % sock)
    server, m = start(gcorn, "-k", "sync", "-w", "1", "-c", str(tmp_path / "c.toml"))
    assert ctl(sock, "workers", "add", "2").stdout == "ok: 3 workers (was 1)\n"
    m.wait(lambda s: Metrics.value(s, "gcorn_workers_booted") == 3, "3 workers")
    r = subprocess.run([GCORN, "ctl", "-c", str(tmp_path / "c.toml"), "workers", "remove", "1"], capture_output=True,
                       text=True, timeout=30)
    assert r.stdout == "ok: 2 workers (was 3)\n", r
    m.wait(lambda s: Metrics.value(s, "gcorn_workers") == 2
           and Metrics.value(s, "gcorn_worker_restarts_total", cause="scale_down") == 1, "one retired")
    before = set(server.worker_pids())
    assert ctl(sock, "reload").stdout == "ok: reloading\n"
    # reload is HUP: the configuration is read again, so `workers` is the file's (and the command line's) 1
    m.wait(lambda s: Metrics.value(s, "gcorn_worker_restarts_total", cause="reload") == 2
           and Metrics.value(s, "gcorn_workers") == 1 and Metrics.value(s, "gcorn_workers_booted") == 1,
           "the workers replaced")
    assert not before & set(server.worker_pids())
    assert ctl(sock, "reopen-logs").stdout.startswith("ok")
    assert ctl(sock, "stop", "--graceful").stdout == "ok: stopping gracefully\n"
    assert server.proc.wait(30) == 0
    assert not sock.exists()  # the master removes its socket


def test_the_control_socket_refuses_other_users(gcorn, tmp_path):
    where = tempfile.mkdtemp(dir="/tmp")  # a directory user nobody may enter (pytest's are 0700)
    os.chmod(where, 0o755)
    sock = os.path.join(where, "ctl.sock")
    server, m = start(gcorn, "-k", "sync", "--control-socket", str(sock), "--control-socket-mode", "0666",
                      metrics=False)
    assert oct(os.stat(sock).st_mode & 0o777) == "0o666"
    probe = "import socket; s = socket.socket(socket.AF_UNIX); s.connect(%r); s.sendall(b'status\\n'); " \
            "print(s.recv(200).decode())" % str(sock)
    r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3", "-c",
                        probe], capture_output=True, text=True, timeout=30)
    assert r.stdout.startswith("error: permission denied"), r


def test_no_control_socket_wins_and_bad_settings_are_named(gcorn, tmp_path):
    sock = tmp_path / "ctl.sock"
    server, m = start(gcorn, "-k", "sync", "--control-socket", str(sock), "--no-control-socket", metrics=False)
    assert not sock.exists()
    r = subprocess.run([GCORN, "-b", "127.0.0.1:%d" % free_port(), "--metrics-bind", "256.1.1.1:1", "--pythonpath",
                        str(tmp_path), "inline_app:app"], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "metrics_bind" in r.stdout + r.stderr, r


def test_usr2_upgrade_keeps_metrics_and_the_control_socket(gcorn, tmp_path):
    """The new master binds the metrics port beside the old one (SO_REUSEPORT) and replaces the control socket;
    the old master, leaving, does not remove the new one's socket."""
    sock = tmp_path / "ctl.sock"
    pidfile = tmp_path / "gcorn.pid"
    server, m = start(gcorn, "-k", "sync", "--control-socket", str(sock), "--pid", str(pidfile))
    old = server.pid
    os.kill(old, signal.SIGUSR2)
    deadline = time.time() + 30
    while not (tmp_path / "gcorn.pid.2").exists():
        assert time.time() < deadline, server.log()
        time.sleep(0.05)
    new = int((tmp_path / "gcorn.pid.2").read_text())
    server.wait_for_log("[%d] [INFO] Control socket at" % new, timeout=30)
    os.kill(old, signal.SIGTERM)
    assert server.proc.wait(30) == 0
    try:
        deadline = time.time() + 30
        while health(m.port) != 200:
            assert time.time() < deadline
            time.sleep(0.05)
        assert "1 workers" in ctl(sock, "status").stdout
    finally:
        os.kill(new, signal.SIGTERM)
        deadline = time.time() + 30
        while os.path.exists("/proc/%d" % new) and time.time() < deadline:
            time.sleep(0.05)
