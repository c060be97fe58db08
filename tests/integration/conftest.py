# Fixtures that start the real gcorn binary on a free port and stop it, asserting a clean exit.
# Test apps live in apps/ (on --pythonpath); a test may also pass inline app source.
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
APPS = HERE / "apps"
GCORN = os.environ.get("GCORN_BIN") or str(ROOT / "build" / "src" / "gcorn")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running gcorn: its process, port, error log, and helpers to talk to it."""

    def __init__(self, proc, port, log_path, workdir):
        self.proc = proc
        self.port = port
        self.log_path = log_path
        self.workdir = workdir
        self.expected_exit = 0

    @property
    def pid(self):
        return self.proc.pid

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def log(self):
        return self.log_path.read_text(errors="replace")

    def get(self, path="/", **kw):
        return urllib.request.urlopen(self.url(path), timeout=kw.pop("timeout", 10), **kw)

    def connect(self, timeout=10):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return s

    def raw(self, data, timeout=10, shutdown=False):
        """Sends raw bytes and returns everything received until the server closes the connection."""
        with self.connect(timeout) as s:
            s.sendall(data)
            if shutdown:
                s.shutdown(socket.SHUT_WR)
            chunks = []
            while True:
                try:
                    b = s.recv(65536)
                except ConnectionResetError:
                    break
                if not b:
                    break
                chunks.append(b)
            return b"".join(chunks)

    def worker_pids(self):
        out = subprocess.run(["pgrep", "-P", str(self.pid)], capture_output=True, text=True).stdout
        return sorted(int(p) for p in out.split())

    def wait_for_log(self, text, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.log():
                return True
            time.sleep(0.05)
        raise AssertionError("%r not in log:\n%s" % (text, self.log()))

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("gcorn did not stop within %ss; log:\n%s" % (timeout, self.log()))


def wait_ready(proc, port, log_path, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError("gcorn exited with %s:\n%s" % (proc.returncode, log_path.read_text()))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                pass
            # The master listens before workers boot: wait until a worker answers.
            with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
                s.sendall(b"GET /__ready__ HTTP/1.0\r\n\r\n")
                s.settimeout(timeout)
                if s.recv(1):
                    return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("gcorn did not become ready:\n%s" % log_path.read_text())


@pytest.fixture
def gcorn(tmp_path):
    """Factory: gcorn("echo:app", "-w", "2", source=None, env=None, ready=True) -> Server."""
    started = []

    def start(app=None, *args, source=None, env=None, ready=True, bind=True, config=None, port=None):
        if source is not None:
            (tmp_path / "inline_app.py").write_text(source)
            app = app or "inline_app:app"
        port = port or free_port()  # given: the port a configuration file binds (bind=False)
        log_path = tmp_path / ("gcorn-%d.log" % len(started))
        cmd = [GCORN]
        if bind:
            cmd += ["-b", "127.0.0.1:%d" % port]
        if config is not None:
            cfg = tmp_path / "gcorn.toml"
            cfg.write_text(config)
            cmd += ["-c", str(cfg)]
        cmd += ["--pythonpath", "%s,%s" % (tmp_path, APPS), "--log-level", "debug", *args]
        if app:
            cmd.append(app)
        full_env = dict(os.environ)
        full_env.pop("GCORN_CMD_ARGS", None)
        full_env.update(env or {})
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=full_env)
        server = Server(proc, port, log_path, tmp_path)
        started.append(server)
        if ready:
            wait_ready(proc, port, log_path)
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            rc = server.stop()
            assert rc == server.expected_exit, "gcorn exited with %s:\n%s" % (rc, server.log())
        # no orphans: every worker is gone with the master
        assert not server.worker_pids()


def run_gcorn(*args, env=None, timeout=30, cwd=None):
    """Runs gcorn to completion (for --version, --check-config, bad configs)."""
    full_env = dict(os.environ)
    full_env.pop("GCORN_CMD_ARGS", None)
    full_env.update(env or {})
    return subprocess.run([GCORN, *args], capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd)


# ---- shared helpers for the tests (one home, DESIGN §7) ----

async def _get(port, path, keepalive=False):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        close = b"" if keepalive else b"Connection: close\r\n"
        writer.write(b"GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (path.encode(), close))
        await writer.drain()
        return await reader.read()
    finally:
        writer.close()


def get_all(port, paths, timeout=60):
    """A GET of each path, all sent at once, each on its own connection; their raw responses in order."""
    async def main():
        return await asyncio.wait_for(asyncio.gather(*[_get(port, p) for p in paths]), timeout)
    return asyncio.run(main())


def concurrent_gets(port, path, n, timeout=60):
    """`n` GETs of `path` sent at once, each on its own connection; their raw responses."""
    return get_all(port, [path] * n, timeout)


def peak(server):
    """How many requests the worker ran at once since the last call (apps wrapped in overlap.track)."""
    with server.get("/_overlap", timeout=30) as r:
        return json.loads(r.read())["peak"]


def split_response(raw):
    """(status line, {lower-case name: [values]}, body bytes) of one raw HTTP/1.x response; the body is all that
    follows the head."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, "no complete response head in %r" % raw[:200]
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return lines[0], headers, body


def split_framed(raw):
    """(status line, headers, body, bytes after the body) of a Content-Length framed response."""
    status, headers, after = split_response(raw)
    length = int(headers["content-length"][0])
    return status, headers, after[:length], after[length:]


class Upstream:
    """A threaded local HTTP server answering GET /<x> after `delay` seconds, with `body` or else <x>. It counts
    how many requests it served at once (`peak`), so a test sees overlap where the calls arrive."""

    def __init__(self, delay, body=None, tls_context=None):
        self._lock = threading.Lock()
        self.running = self.peak = 0
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, so pooled connections are reused

            def do_GET(self):
                with upstream._lock:
                    upstream.running += 1
                    upstream.peak = max(upstream.peak, upstream.running)
                try:
                    time.sleep(delay)
                finally:
                    with upstream._lock:
                        upstream.running -= 1
                data = body if body is not None else self.path.strip("/").encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        ThreadingHTTPServer.request_queue_size = 512
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls_context is not None:
            self.server.socket = tls_context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, host="127.0.0.1", scheme="http"):
        return "%s://%s:%d" % (scheme, host, self.port)

    def shutdown(self):
        self.server.shutdown()


@pytest.fixture
def upstream():
    """Factory: upstream(delay, body=None, tls_context=None) -> Upstream, shut down after the test."""
    started = []

    def start(delay, body=None, tls_context=None):
        started.append(Upstream(delay, body, tls_context))
        return started[-1]

    yield start
    for u in started:
        u.shutdown()


@pytest.fixture
def https_upstream(upstream, tmp_path):
    """Factory: https_upstream(delay, body) -> (Upstream over TLS with a certificate for localhost/127.0.0.1 from a
    fresh CA, the CA's PEM file for clients)."""
    trustme = pytest.importorskip("trustme")
    import ssl

    def start(delay, body):
        ca = trustme.CA()
        cafile = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(cafile))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("localhost", "127.0.0.1").configure_cert(ctx)
        return upstream(delay, body, tls_context=ctx), cafile
    return start

