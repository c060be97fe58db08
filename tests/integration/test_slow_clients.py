# Slow and hostile clients cost only themselves, in every worker class (issue 13, item 5): heads trickled a byte a
# second, connections that never send one, and more connections than the worker has file descriptors.
import asyncio
import os
import resource
import socket
import stat
import sys
import threading
import time

import pytest

import conftest

WORKERS = ["sync", "gthread", "async"]
HEAD_TIMEOUT = 2  # --header-timeout in these tests: short, so a test waits seconds and not the default 10


def worker_cpu_seconds(pid):
    """utime + stime of a process, from /proc/PID/stat (fields 14 and 15, in clock ticks)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_get(port, path, timeout):
    """One GET on its own connection; (seconds it took, raw response)."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % path.encode())
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    return time.monotonic() - start, raw


class Tricklers:
    """`n` connections each sending a request head one byte a second, in an asyncio loop on its own thread.
    Each records what the server sent back (a 408, nothing, a reset) and when."""

    HEAD = b"GET /trickle HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"  # 200+ s at a byte a second

    def __init__(self, port, n):
        self.port, self.n = port, n
        self.connected = threading.Event()
        self.results = []  # (seconds from connect to the server's answer or close, bytes received)
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.thread.start()

    def join(self, timeout):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "tricklers still running: the server kept slow heads open"

    async def _main(self):
        conns = [await asyncio.open_connection("127.0.0.1", self.port) for _ in range(self.n)]
        self.connected.set()
        self.results = await asyncio.gather(*[self._trickle(r, w) for r, w in conns])

    async def _trickle(self, reader, writer):
        start = time.monotonic()
        received = b""
        try:
            for byte in self.HEAD:
                writer.write(bytes([byte]))
                await writer.drain()
                try:
                    chunk = await asyncio.wait_for(reader.read(65536), 1.0)
                except asyncio.TimeoutError:
                    continue
                received += chunk
                if not chunk or b"\r\n\r\n" in received:
                    break
            # (the whole head sent: the server answered something else, recorded as is)
        except (ConnectionResetError, BrokenPipeError):
            pass
        finally:
            writer.close()
        return time.monotonic() - start, received


@pytest.mark.parametrize("worker", WORKERS)
def test_trickling_heads_cost_only_themselves(gcorn, worker):
    # -t 6: a worker stuck on a slow head would miss its heartbeat and be killed; the heads get 2 s.
    server = gcorn("echo:app", "-w", "1", "-k", worker, "-t", "6", "--header-timeout", str(HEAD_TIMEOUT))
    workers = server.worker_pids()
    tricklers = Tricklers(server.port, 200)
    assert tricklers.connected.wait(30)
    # Ten ordinary requests while 200 heads trickle in: each answered, not queued behind the slow ones (behind
    # them, one worker would take 200 head deadlines, far past the client's 15 s).
    for i in range(10):
        _, raw = timed_get(server.port, "/normal/%d" % i, timeout=15)
        assert raw.startswith(b"HTTP/1.1 200 OK"), raw[:200]
        time.sleep(0.2)
    tricklers.join(60)
    # Every trickling head got its 408 once the head deadline passed (not before, not never).
    assert len(tricklers.results) == 200
    statuses = [received.split(b"\r\n", 1)[0] for _, received in tricklers.results]
    assert statuses == [b"HTTP/1.1 408 Request Timeout"] * 200, set(statuses)
    times = sorted(t for t, _ in tricklers.results)
    assert times[0] >= HEAD_TIMEOUT - 0.5, times[0]
    assert "WORKER TIMEOUT" not in server.log()
    assert server.worker_pids() == workers
    with server.get("/after") as r:
        assert r.status == 200


@pytest.mark.parametrize("worker", WORKERS)
def test_connection_that_never_sends_is_closed_without_a_response(gcorn, worker):
    # As nginx: no request, no answer (a browser's preconnected socket); only a started head gets 408.
    server = gcorn("echo:app", "-w", "1", "-k", worker, "--header-timeout", str(HEAD_TIMEOUT))
    with server.connect(timeout=HEAD_TIMEOUT + 15) as s:
        start = time.monotonic()
        try:
            received = s.recv(65536)
        except ConnectionResetError:
            received = b""
        elapsed = time.monotonic() - start
    assert received == b""
    assert elapsed >= HEAD_TIMEOUT - 0.5, elapsed  # not before its deadline (load only ever makes it later)


@pytest.mark.parametrize("worker", WORKERS)
def test_head_timeout_is_at_most_timeout(gcorn, worker):
    # header_timeout 10 (the default) with -t 2: the head gets 2 s, so a worker is never killed for a client's
    # slowness, and the client learns why it was dropped.
    server = gcorn("echo:app", "-w", "1", "-k", worker, "-t", "2")
    # The client waits 8 s, less than the uncapped 10: only a head timeout capped at 2 s answers it in time.
    with server.connect(timeout=8) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
        start = time.monotonic()
        received = s.recv(65536)
        elapsed = time.monotonic() - start
    assert received.startswith(b"HTTP/1.1 408 "), received
    assert elapsed >= 1.5, elapsed  # not before its deadline (load only ever makes it later)
    assert "WORKER TIMEOUT" not in server.log()


# --- Out of file descriptors: pause accepting, say so once, go on serving

FD_LIMIT = 256
IDLE_CONNECTIONS = 600


@pytest.fixture
def limited_gcorn(gcorn, tmp_path, monkeypatch):
    """The gcorn fixture, its binary started under RLIMIT_NOFILE FD_LIMIT (soft and hard: gcorn raises the soft
    limit to the hard one at start)."""
    wrapper = tmp_path / "gcorn-limited"
    wrapper.write_text("#!%s\nimport os, resource, sys\nresource.setrlimit(resource.RLIMIT_NOFILE, (%d, %d))\n"
                       "os.execv(%r, [%r] + sys.argv[1:])\n" % (sys.executable, FD_LIMIT, FD_LIMIT,
                                                                 conftest.GCORN, conftest.GCORN))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(conftest, "GCORN", str(wrapper))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = IDLE_CONNECTIONS + 200
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip("the test process may open only %d files" % hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    yield gcorn
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize("worker", WORKERS)
def test_out_of_file_descriptors_pauses_accepting(limited_gcorn, worker):
    # The idle connections wait far longer than the test: the worker holds every descriptor it can get.
    server = limited_gcorn("echo:app", "-w", "1", "-k", worker, "-t", "60", "--header-timeout", "60")
    [pid] = server.worker_pids()
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(IDLE_CONNECTIONS)]
    try:
        server.wait_for_log("Out of file descriptors", timeout=15)
        time.sleep(0.5)
        # The listener stays readable while the queue waits for a descriptor: a loop that goes straight back to
        # accept(2) spins at 100 % of a core.
        before, start = worker_cpu_seconds(pid), time.monotonic()
        time.sleep(2)
        share = (worker_cpu_seconds(pid) - before) / (time.monotonic() - start)
        assert share < 0.20, "the worker used %.0f %% CPU out of file descriptors" % (share * 100)
        assert server.log().count("Out of file descriptors") == 1, server.log()[-3000:]
    finally:
        for s in idle:
            s.close()
    # The connections close: the worker accepts and serves again.
    deadline = time.monotonic() + 30
    while True:
        try:
            elapsed, raw = timed_get(server.port, "/again", timeout=10)
            if raw.startswith(b"HTTP/1.1 200 OK"):
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the worker did not serve again:\n" + server.log()[-3000:]
        time.sleep(0.2)
    assert server.worker_pids() == [pid]
