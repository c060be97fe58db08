# The arbiter (issue 3): signals, scoreboard timeouts, faults, re-exec, zero-downtime reloads.
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

from conftest import APPS, GCORN, free_port, wait_ready


def wait_until(predicate, timeout=15, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met within %ss" % timeout)


def pid_of(server, path="/"):
    with server.get(path) as r:
        return int(r.read())


def test_hup_reloads_config_and_replaces_every_worker(gcorn, tmp_path):
    cfg = tmp_path / "app.toml"
    cfg.write_text('workers = 1\n')
    server = gcorn("faults:app", "-c", str(cfg))
    old = server.worker_pids()
    cfg.write_text('workers = 3\n')
    server.proc.send_signal(signal.SIGHUP)
    new = wait_until(lambda: (lambda p: p if len(p) == 3 and not set(p) & set(old) else None)(server.worker_pids()))
    assert len(new) == 3
    assert pid_of(server) in new


SLOW_BOOT_APP = r'''
import os, time
# The next generation's import is slow once the test says so: while it loads, only the old worker can answer.
if os.path.exists(os.path.join(os.path.dirname(__file__), "slow")):
    time.sleep(6)

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
'''


def test_hup_stops_the_old_workers_only_once_a_new_one_has_loaded_the_app(gcorn, tmp_path):
    (tmp_path / "slowboot.py").write_text(SLOW_BOOT_APP)
    server = gcorn("slowboot:app", "--pythonpath", str(tmp_path), "-w", "1")
    old = server.worker_pids()
    (tmp_path / "slow").write_text("")
    server.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: len(server.worker_pids()) == 2)  # the new one is forked
    # The new worker is importing for 6 s: requests now are the old worker's, not queued for the new one.
    for _ in range(5):
        assert pid_of(server) == old[0]
    new = wait_until(lambda: (lambda p: p if len(p) == 1 and p != old else None)(server.worker_pids()), timeout=30)
    assert pid_of(server) == new[0]


def test_hup_with_a_broken_config_keeps_running(gcorn, tmp_path):
    cfg = tmp_path / "app.toml"
    cfg.write_text('workers = 2\n')
    server = gcorn("faults:app", "-c", str(cfg))
    cfg.write_text('workers = "many"\n')
    server.proc.send_signal(signal.SIGHUP)
    server.wait_for_log("Reload failed, keeping the running configuration")
    assert "setting 'workers'" in server.log()
    wait_until(lambda: len(server.worker_pids()) == 2)
    assert pid_of(server)


def test_ttin_ttou_change_the_worker_count(gcorn):
    server = gcorn("faults:app", "-w", "2")
    server.proc.send_signal(signal.SIGTTIN)
    wait_until(lambda: len(server.worker_pids()) == 3)
    server.proc.send_signal(signal.SIGTTOU)
    wait_until(lambda: len(server.worker_pids()) == 2)
    server.proc.send_signal(signal.SIGTTOU)  # one at a time: identical pending signals merge
    wait_until(lambda: len(server.worker_pids()) == 1)


def test_usr1_reopens_logs_like_logrotate(gcorn, tmp_path):
    access = tmp_path / "access.log"
    server = gcorn("faults:app", "--access-logfile", str(access), "-w", "2")
    pid_of(server, "/before")
    wait_until(lambda: access.exists() and "/before" in access.read_text())
    access.rename(tmp_path / "access.log.1")
    server.proc.send_signal(signal.SIGUSR1)
    server.wait_for_log("Handling signal: usr1")
    time.sleep(0.3)
    for _ in range(4):  # whichever worker answers, it writes to the new file
        pid_of(server, "/after")
    wait_until(lambda: access.exists() and access.read_text().count("/after") == 4)
    assert "/after" not in (tmp_path / "access.log.1").read_text()


def test_hanging_sync_worker_is_killed_and_replaced(gcorn):
    server = gcorn("faults:app", "-t", "2")
    for path in ("/spin", "/sleep-forever"):
        before = server.worker_pids()
        with pytest.raises(Exception):
            pid_of(server, path)
        server.wait_for_log("WORKER TIMEOUT (pid:%d) serving GET %s" % (before[0], path), timeout=15)
        after = wait_until(lambda: (lambda p: p if p and p != before else None)(server.worker_pids()))
        assert pid_of(server) in after
    assert "in app" in server.log()  # the stuck request's Python stack, dumped on SIGABRT


def test_crashing_request_loses_only_itself(gcorn):
    server = gcorn("faults:app", "-w", "1")
    for path in ("/kill9", "/segfault"):
        with pytest.raises(Exception):
            pid_of(server, path)
        wait_until(lambda: len(server.worker_pids()) == 1)
        assert pid_of(server)  # the replacement serves at once
    log = server.log()
    assert "was sent SIGKILL" in log and "was sent signal 11" in log


def test_worker_that_never_boots_stops_the_master(gcorn):
    server = gcorn("crash_on_import:app", "-w", "2", ready=False)
    server.expected_exit = 3
    assert server.proc.wait(timeout=30) == 3
    assert "workers died 5 times in a row before loading the app" in server.log()


def test_process_titles(gcorn):
    server = gcorn("faults:app", "-n", "titled")
    titles = subprocess.run(["ps", "-o", "args=", "-p", ",".join(map(str, [server.pid] + server.worker_pids()))],
                            capture_output=True, text=True).stdout
    assert "gcorn: master [titled]" in titles and "gcorn: worker [titled]" in titles


def test_systemd_socket_activation(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    log = tmp_path / "log"
    launcher = ("import os, sys\n"
                "os.dup2(%d, 3)\n"
                "os.environ['LISTEN_FDS'] = '1'\n"
                "os.environ['LISTEN_PID'] = str(os.getpid())\n"
                "os.execv(%r, [%r, '--pythonpath', %r, 'faults:app'])\n" % (sock.fileno(), GCORN, GCORN, str(APPS)))
    with open(log, "wb") as out:
        proc = subprocess.Popen(["/usr/bin/python3", "-c", launcher], pass_fds=(sock.fileno(),), stdout=out,
                                stderr=subprocess.STDOUT)
    sock.close()
    try:
        wait_ready(proc, port, log)
        assert "Listening at: http://127.0.0.1:%d" % port in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


class LoadLoop:
    """Clients hammering the server the whole time: keep-alive ones and one-connection-per-request ones."""

    def __init__(self, port, keepalive=20, fresh=20):
        self.port, self.stop, self.ok, self.errors = port, threading.Event(), 0, []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.keepalive_client) for _ in range(keepalive)] + \
                       [threading.Thread(target=self.fresh_client) for _ in range(fresh)]

    def record(self, data):
        with self.lock:
            if data.startswith(b"HTTP/1.1 200 OK") or data.startswith(b"HTTP/1.0 200 OK"):
                self.ok += 1
            else:
                self.errors.append(data[:80])

    def request(self, s):
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError("closed before a response: %r" % data)
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
        while len(body) < length:
            body += s.recv(4096)
        return head, data

    def keepalive_client(self):
        s = None
        while not self.stop.is_set():
            try:
                s = s or socket.create_connection(("127.0.0.1", self.port), timeout=10)
                head, data = self.request(s)
                self.record(data)
                if b"connection: close" in head.lower():
                    s.close()
                    s = None  # the server said so: reconnect, as any HTTP/1.1 client does
            except Exception as e:
                with self.lock:
                    self.errors.append(repr(e))
                s = None

    def fresh_client(self):
        while not self.stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
                    self.record(self.request(s)[1])
            except Exception as e:
                with self.lock:
                    self.errors.append(repr(e))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def test_zero_downtime_hup_usr2_ttin_ttou(gcorn, tmp_path):
    pidfile = tmp_path / "gcorn.pid"
    server = gcorn("faults:app", "-k", "async", "-w", "2", "-p", str(pidfile), "--graceful-timeout", "10")
    old_master = server.pid
    with LoadLoop(server.port) as load:
        time.sleep(1)
        server.proc.send_signal(signal.SIGHUP)
        time.sleep(2)
        # USR2: a new master from the binary, inheriting the listeners; then TERM the old one.
        server.proc.send_signal(signal.SIGUSR2)
        new_pidfile = tmp_path / "gcorn.pid.2"
        wait_until(lambda: new_pidfile.exists())
        new_master = int(new_pidfile.read_text())
        assert int((tmp_path / "gcorn.pid.oldbin").read_text()) == old_master
        wait_until(lambda: len(subprocess.run(["pgrep", "-P", str(new_master)], capture_output=True,
                                              text=True).stdout.split()) == 2)
        time.sleep(1)
        server.proc.send_signal(signal.SIGTERM)  # graceful: QUIT would cut the old master's requests
        assert server.proc.wait(20) == 0
        # The new master notices and takes the main pidfile.
        wait_until(lambda: pidfile.exists() and int(pidfile.read_text()) == new_master)
        os.kill(new_master, signal.SIGTTIN)
        time.sleep(1.5)
        os.kill(new_master, signal.SIGTTOU)
        time.sleep(1.5)
    try:
        assert load.errors == [], load.errors[:5]
        assert load.ok > 500
    finally:
        os.kill(new_master, signal.SIGTERM)
        wait_until(lambda: subprocess.run(["kill", "-0", str(new_master)], capture_output=True).returncode != 0)


def test_winch_stops_the_workers_of_a_daemon_and_hup_brings_them_back(tmp_path):
    port = free_port()
    pidfile = tmp_path / "d.pid"
    log = tmp_path / "d.log"
    subprocess.run([GCORN, "-D", "-w", "2", "-p", str(pidfile), "--error-logfile", str(log),
                    "-b", "127.0.0.1:%d" % port, "--pythonpath", str(APPS), "faults:app"], timeout=20, check=True)
    master = wait_until(lambda: pidfile.exists() and int(pidfile.read_text()))
    children = lambda: subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split()
    try:
        wait_until(lambda: len(children()) == 2)
        os.kill(master, signal.SIGWINCH)
        wait_until(lambda: len(children()) == 0)
        os.kill(master, signal.SIGHUP)
        wait_until(lambda: len(children()) == 2)
        with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=10) as r:
            assert int(r.read()) in map(int, children())
    finally:
        os.kill(master, signal.SIGTERM)
        wait_until(lambda: not pidfile.exists())


def test_winch_is_ignored_without_daemon(gcorn):
    server = gcorn("faults:app", "-w", "2")
    server.proc.send_signal(signal.SIGWINCH)
    server.wait_for_log("SIGWINCH ignored. Not daemonized")
    assert len(server.worker_pids()) == 2


def test_ipv6_loopback_bind(gcorn):
    port = free_port()
    server = gcorn("faults:app", "-b", "[::1]:%d" % port)
    s = socket.create_connection(("::1", port), timeout=10)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = b""
    while chunk := s.recv(4096):
        data += chunk
    assert data.startswith(b"HTTP/1.0 200 OK")
    assert "Listening at: http://[::1]:%d" % port in server.log()
