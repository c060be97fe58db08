# Process model basics: privileges dropped in workers, unix-socket binds, several binds, daemon mode.
import http.client
import json
import os
import pwd
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import APPS, GCORN, free_port

WHOAMI = ("import os\n"
          "def app(environ, start_response):\n"
          "    body = ('%d:%d' % (os.getuid(), os.getgid())).encode()\n"
          "    start_response('200 OK', [('Content-Length', str(len(body)))])\n"
          "    return [body]\n")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.path)


def unix_get(path, url="/"):
    conn = UnixHTTPConnection(path)
    conn.request("GET", url)
    r = conn.getresponse()
    return r.status, r.read()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")
def test_workers_drop_to_user_and_group(gcorn, tmp_path):
    # pytest's tmp_path is private to root: put the app where "nobody" can read it.
    appdir = tempfile.mkdtemp(prefix="gcorn-user-")
    os.chmod(appdir, 0o755)
    with open(os.path.join(appdir, "whoami.py"), "w") as f:
        f.write(WHOAMI)
    nobody = pwd.getpwnam("nobody")
    server = gcorn("whoami:app", "-u", "nobody", "-g", str(nobody.pw_gid), "--pythonpath", appdir)
    with server.get("/") as r:
        assert r.read().decode() == "%d:%d" % (nobody.pw_uid, nobody.pw_gid)
    assert os.stat("/proc/%d" % server.pid).st_uid == 0  # the master keeps its identity


def test_unknown_user_is_a_clear_error(tmp_path):
    r = subprocess.run([GCORN, "-u", "no-such-user-xyz", "-b", "127.0.0.1:%d" % free_port(), "echo:app"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 2
    assert "no such user 'no-such-user-xyz'" in r.stderr


def test_unix_socket_and_tcp_together(gcorn, tmp_path):
    sock = tmp_path / "gcorn.sock"
    server = gcorn("echo:app", "-b", "unix:%s" % sock, "--umask", "0o007")
    status, body = unix_get(str(sock), "/via-unix")
    assert status == 200 and b'"/via-unix"' in body
    # A unix peer has no port: the key is absent (the echo app's PEP 3333 validator refuses a None value).
    report = json.loads(body)
    assert "REMOTE_PORT" not in report and report["REMOTE_ADDR"] == ""
    assert oct(os.stat(sock).st_mode & 0o777) == oct(0o770)
    with server.get("/via-tcp") as r:
        assert b'"/via-tcp"' in r.read()
    assert server.stop() == 0
    assert not sock.exists()  # removed on shutdown


def test_daemon_mode_detaches_and_stops_by_pidfile(tmp_path):
    port = free_port()
    pidfile = tmp_path / "d.pid"
    log = tmp_path / "d.log"
    r = subprocess.run([GCORN, "-D", "-p", str(pidfile), "--error-logfile", str(log), "-b", "127.0.0.1:%d" % port,
                        "--pythonpath", str(APPS), "echo:app"], timeout=20)
    assert r.returncode == 0  # the foreground process returns at once
    deadline = time.time() + 10
    while not pidfile.exists() and time.time() < deadline:
        time.sleep(0.05)
    pid = int(pidfile.read_text())
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"GET /daemon HTTP/1.0\r\n\r\n")
                    assert b"200 OK" in s.recv(100)
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise AssertionError(log.read_text())
        assert os.getsid(pid) == pid or os.getsid(pid) != os.getsid(0)  # detached from our session
    finally:
        os.kill(pid, signal.SIGTERM)
    deadline = time.time() + 15
    while pidfile.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert not pidfile.exists()
    assert "Shutting down: Master" in log.read_text()


def test_bind_in_use_is_a_clear_error(gcorn):
    server = gcorn("echo:app")
    r = subprocess.run([GCORN, "-b", "127.0.0.1:%d" % server.port, "echo:app"], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 1
    assert "cannot listen on '127.0.0.1:%d'" % server.port in r.stderr


IMPORT_PID = ("import os\n"
              "IMPORTED_IN = os.getpid()\n"
              "def app(environ, start_response):\n"
              "    body = ('%d %d' % (IMPORTED_IN, os.getpid())).encode()\n"
              "    start_response('200 OK', [('Content-Length', str(len(body)))])\n"
              "    return [body]\n")


def test_preload_imports_the_app_once_in_the_master(gcorn):
    server = gcorn(None, "--preload", "-w", "2", source=IMPORT_PID)
    with server.get("/") as r:
        imported_in, served_by = map(int, r.read().split())
    assert imported_in == server.pid
    assert served_by in server.worker_pids()


def test_without_preload_each_worker_imports_the_app(gcorn):
    server = gcorn(None, source=IMPORT_PID)
    with server.get("/") as r:
        imported_in, served_by = map(int, r.read().split())
    assert imported_in == served_by != server.pid


def test_preload_failure_stops_before_forking(gcorn):
    server = gcorn("echo:missing_attribute", "--preload", ready=False)
    server.expected_exit = 4
    assert server.proc.wait(timeout=20) == 4
    assert "Booting worker" not in server.log()
    assert "missing_attribute" in server.log()


def test_reuse_port_gives_each_worker_its_own_accept_queue(gcorn):
    import re
    server = gcorn("echo:app", "-w", "2", "--reuse-port")

    def owners():
        out = subprocess.run(["ss", "-Hltnp", "sport = :%d" % server.port], capture_output=True, text=True).stdout
        return sorted(int(p) for p in re.findall(r"pid=(\d+)", out))

    deadline = time.time() + 10
    while owners() != server.worker_pids() and time.time() < deadline:
        time.sleep(0.05)  # the second worker may still be booting
    assert owners() == server.worker_pids()  # one listening socket per worker, none in the master
    for _ in range(20):
        with server.get("/") as r:
            assert r.status == 200


def test_pidfile_is_not_world_writable_whatever_the_umask(gcorn, tmp_path):
    pidfile = tmp_path / "g.pid"
    gcorn("echo:app", "-p", str(pidfile), "-m", "0")
    assert oct(os.stat(pidfile).st_mode & 0o777) == oct(0o644)
