# Real services used cooperatively from the async worker (apps/greenapps.py): a redis-server through python3-redis
# and a PostgreSQL server through psycopg2 (gcorn.monkey's wait callback), each started here on loopback.
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import concurrent_gets, free_port, get_all, peak


def wait_port(port, proc, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("%s exited with %s" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("%s did not start" % what)


def stop(proc):
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def redis_port(tmp_path):
    server = shutil.which("redis-server")
    if not server:
        pytest.skip("needs redis-server")
    pytest.importorskip("redis")
    port = free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc, "redis-server")
        yield port
    finally:
        stop(proc)


@pytest.fixture
def postgres_port():
    """A throw-away cluster in a temp dir, trust auth on loopback; as user postgres when we are root (postgres
    refuses to run as root)."""
    bindir = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bindir:
        pytest.skip("needs postgresql")
    pytest.importorskip("psycopg2")
    bindir = bindir[-1]
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    datadir = tempfile.mkdtemp(prefix="gcorn-pg-")
    if as_user:
        shutil.chown(datadir, "postgres", "postgres")
    port = free_port()
    try:
        subprocess.run(as_user + [bindir + "/initdb", "-D", datadir, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                       check=True, capture_output=True, timeout=120)
        proc = subprocess.Popen(as_user + [bindir + "/postgres", "-D", datadir, "-p", str(port), "-h", "127.0.0.1",
                                           "-k", datadir, "-c", "max_connections=300", "-c", "fsync=off"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            wait_port(port, proc, "postgres")
            yield port
        finally:
            stop(proc)
    finally:
        shutil.rmtree(datadir, ignore_errors=True)


def test_redis_concurrent_blocking_calls(gcorn, redis_port):
    server = gcorn("greenapps:app", "-k", "async")
    # 50 requests each wait 1 s on the server (BLPOP on an empty list), each on its own redis connection.
    responses = get_all(server.port, ["/redis_roundtrip?port=%d&key=k%d" % (redis_port, i) for i in range(50)])
    for i, r in enumerate(responses):
        assert r.startswith(b"HTTP/1.1 200") and b'"value": "K%d"' % i in r and b'"blocked": null' in r, r
    assert peak(server) >= 10  # the blocking calls overlapped (serially: one at a time, 50 s)


def test_postgres_100_concurrent_pg_sleeps_overlap(gcorn, postgres_port):
    server = gcorn("greenapps:app", "-k", "async", "--worker-connections", "500")
    with server.get("/pg_sleep?port=%d&seconds=0" % postgres_port, timeout=30) as r:  # warm: imports, first connect
        assert b"backend" in r.read()
    responses = concurrent_gets(server.port, "/pg_sleep?port=%d&seconds=0.1" % postgres_port, 100)
    assert all(r.startswith(b"HTTP/1.1 200") and b'"backend"' in r for r in responses), responses[:1]
    backends = {r.split(b'"backend": ')[1] for r in responses}
    assert len(backends) > 10  # the queries really overlapped, on many connections
    assert peak(server) >= 20  # the pg_sleeps overlapped in the one worker (serially: one at a time)
