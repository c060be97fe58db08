# Fixtures that start the real gcorn binary on a free port and stop it, asserting a clean exit.
# Test apps live in apps/ (on --pythonpath); a test may also pass inline app source.
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
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

    def start(app=None, *args, source=None, env=None, ready=True, bind=True, config=None):
        if source is not None:
            (tmp_path / "inline_app.py").write_text(source)
            app = app or "inline_app:app"
        port = free_port()
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
