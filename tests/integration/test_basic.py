# The binary's basics: version, help, serving the example app, and a clean stop.
import json
import signal
import subprocess

from conftest import ROOT, run_gcorn


def test_version():
    r = run_gcorn("--version")
    assert r.returncode == 0
    assert r.stdout.startswith("gcorn (version ")


def test_help_lists_gunicorn_flags():
    r = run_gcorn("-h")
    assert r.returncode == 0
    for flag in ("--bind", "--workers", "--worker-class", "--timeout", "--keep-alive", "--access-logformat",
                 "--limit-request-field_size", "--forwarded-allow-ips", "--print-config", "--check-config"):
        assert flag in r.stdout


def test_serves_example_app_with_two_workers(gcorn):
    server = gcorn("examples.hello:app", "-w", "2", "--chdir", str(ROOT))
    with server.get("/") as r:
        assert r.status == 200
        assert r.read() == b"Hello, World!\n"
        assert r.headers["Server"] == "gcorn"
        assert r.headers["Date"]
    assert len(server.worker_pids()) == 2


def test_echo_environ(gcorn):
    server = gcorn("echo:app")
    with server.get("/a%20b/c?x=1&y=2") as r:
        env = json.loads(r.read())
    assert env["REQUEST_METHOD"] == "GET"
    assert env["PATH_INFO"] == "/a b/c"
    assert env["QUERY_STRING"] == "x=1&y=2"
    assert env["RAW_URI"] == "/a%20b/c?x=1&y=2"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(server.port)
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.version"] == [1, 0]
    assert env["wsgi.input_terminated"] is True


def test_stop_signals_exit_cleanly(gcorn):
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        server = gcorn("echo:app", "-w", "2")
        workers = server.worker_pids()
        assert len(workers) == 2
        assert server.stop(sig) == 0
        assert "Shutting down: Master" in server.log()
        for pid in workers:
            assert subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0


def test_pidfile_written_and_removed(gcorn, tmp_path):
    pidfile = tmp_path / "gcorn.pid"
    server = gcorn("echo:app", "-p", str(pidfile))
    assert int(pidfile.read_text()) == server.pid
    assert server.stop() == 0
    assert not pidfile.exists()


def test_dead_worker_is_respawned(gcorn):
    import os
    import time
    server = gcorn("echo:app", "-w", "2")
    before = server.worker_pids()
    os.kill(before[0], signal.SIGKILL)
    deadline = time.time() + 10
    while time.time() < deadline:
        after = server.worker_pids()
        if len(after) == 2 and before[0] not in after:
            break
        time.sleep(0.05)
    assert len(after) == 2 and before[0] not in after
    with server.get("/") as r:
        assert r.status == 200
