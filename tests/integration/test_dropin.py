# Drop-in for Gunicorn users (issue 11): their configuration files and environment variables, their Python on
# PATH, their virtualenvs. Each test drives the real binary as a Gunicorn user would.
import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from conftest import APPS, GCORN, free_port, run_gcorn
from test_arbiter import wait_until

OS_ENVIRON_APP = """
import json, os

def app(environ, start_response):
    body = json.dumps({"pid": os.getpid(), "set_by_conf": os.environ.get("SET_BY_CONF")}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
"""

# A real gunicorn.conf.py: computed values, an unknown name, inline hooks, an environment change.
GUNICORN_CONF = """
import multiprocessing
import os

workers = len([multiprocessing.cpu_count()]) * 2          # computed: 2
bind = "127.0.0.1:%d" % int(os.environ["TEST_PORT"])
proc_name = "from-" + "conf"
timeout = 30.0
keepalive = 5
forwarded_allow_ips = "127.0.0.1,10.0.0.0/8"
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}
some_helper_value = object()                               # not a setting: ignored, as Gunicorn does
os.environ["SET_BY_CONF"] = "yes"

def when_ready(server):
    server.log.info("when_ready from gunicorn.conf.py: %d workers" % server.num_workers)

def post_fork(server, worker):
    server.log.info("post_fork from gunicorn.conf.py, age %d" % worker.age)
"""


def json_get(server, path="/"):
    with server.get(path) as r:
        return json.loads(r.read())


def test_gunicorn_conf_py_runs_as_python(gcorn, tmp_path):
    port = free_port()
    (tmp_path / "gunicorn.conf.py").write_text(GUNICORN_CONF)
    server = gcorn(None, "-c", str(tmp_path / "gunicorn.conf.py"), source=OS_ENVIRON_APP, bind=False,
                   env={"TEST_PORT": str(port)}, port=port)
    assert len(server.worker_pids()) == 2
    assert json_get(server)["set_by_conf"] == "yes"  # the file's os.environ reaches the workers
    server.wait_for_log("when_ready from gunicorn.conf.py: 2 workers")
    server.wait_for_log("post_fork from gunicorn.conf.py, age 2")
    assert "gcorn: master [from-conf]" in subprocess.run(["ps", "-o", "args=", "-p", str(server.pid)],
                                                          capture_output=True, text=True).stdout


def test_gunicorn_conf_py_in_the_working_directory_is_found(gcorn, tmp_path):
    port = free_port()
    (tmp_path / "gunicorn.conf.py").write_text(GUNICORN_CONF)  # gcorn runs in tmp_path, with no gcorn.toml
    server = gcorn(None, source=OS_ENVIRON_APP, bind=False, env={"TEST_PORT": str(port)}, port=port)
    assert len(server.worker_pids()) == 2


def test_python_module_config(gcorn, tmp_path):
    (tmp_path / "myconf.py").write_text("workers = 3\nbacklog = 64\n")
    server = gcorn("echo:app", "-c", "python:myconf", env={"PYTHONPATH": str(tmp_path)})
    assert len(server.worker_pids()) == 3


def test_print_config_migrates_gunicorn_conf_py_to_toml(tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text(GUNICORN_CONF)
    r = run_gcorn("--print-config", "-c", "gunicorn.conf.py", "echo:app", cwd=tmp_path, env={"TEST_PORT": "8123"})
    assert r.returncode == 0, r.stderr
    assert "workers = 2\n" in r.stdout and 'bind = ["127.0.0.1:8123"]' in r.stdout
    assert 'forwarded_allow_ips = ["127.0.0.1", "10.0.0.0/8"]' in r.stdout
    assert 'secure_scheme_headers = ["X-FORWARDED-PROTO=https"]' in r.stdout
    assert "when_ready=%s:when_ready" % (tmp_path / "gunicorn.conf.py") in r.stdout
    assert '"SET_BY_CONF=yes"' in r.stdout
    # The printed TOML is a working gcorn configuration of its own.
    (tmp_path / "migrated.toml").write_text(r.stdout)
    again = run_gcorn("--print-config", "-c", "migrated.toml", cwd=tmp_path, env={"TEST_PORT": "1"})
    assert again.returncode == 0, again.stderr
    assert again.stdout == r.stdout


def test_a_broken_gunicorn_conf_py_is_a_clear_error(tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text("workers = 1 / 0\n")
    r = run_gcorn("-c", "gunicorn.conf.py", "echo:app", cwd=tmp_path)
    assert r.returncode == 2
    assert "gunicorn.conf.py" in r.stderr and "ZeroDivisionError" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr  # one line, not the script's traceback


def test_a_bad_value_in_gunicorn_conf_py_names_the_setting_and_file(tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text("workers = 'many'\n")
    r = run_gcorn("-c", "gunicorn.conf.py", "echo:app", cwd=tmp_path)
    assert r.returncode == 2
    assert "gunicorn.conf.py" in r.stderr and "'workers'" in r.stderr, r.stderr


def test_gunicorn_cmd_args_is_read(gcorn):
    server = gcorn("echo:app", env={"GUNICORN_CMD_ARGS": "--workers 3"})
    assert len(server.worker_pids()) == 3


def test_gcorn_cmd_args_wins_over_gunicorn_cmd_args(gcorn):
    server = gcorn("echo:app", env={"GUNICORN_CMD_ARGS": "--workers 3", "GCORN_CMD_ARGS": "--workers 2"})
    assert len(server.worker_pids()) == 2


# ---- the user's Python: PATH, virtualenvs ----

def fake_python_first_on_path(tmp_path):
    """A `python3` first on PATH whose standard library is broken: an embedded interpreter that finds its home
    from PATH (instead of the one gcorn was built for) loads it and dies, as with an activated pyenv."""
    root = tmp_path / "otherpython"
    (root / "bin").mkdir(parents=True)
    lib = root / "lib" / ("python%d.%d" % sys.version_info[:2])
    (lib / "lib-dynload").mkdir(parents=True)
    (lib / "os.py").write_text("raise SystemExit('the wrong standard library was loaded')\n")
    exe = root / "bin" / "python3"
    exe.write_text("#!/bin/sh\nexit 1\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return str(root / "bin")


@pytest.mark.parametrize("worker_class", ["sync", "async"])
def test_another_python_first_on_path_does_not_matter(gcorn, tmp_path, worker_class):
    path = fake_python_first_on_path(tmp_path) + os.pathsep + os.environ["PATH"]
    server = gcorn("echo:app", "-k", worker_class, env={"PATH": path})
    with server.get("/") as r:
        assert r.status == 200
    assert "Segmentation" not in server.log() and "signal" not in server.log().lower()


def test_pyenv_python_first_on_path_does_not_matter(gcorn):
    pyenv = [p for p in ("/root/.pyenv/versions/3.11.7/bin", os.path.expanduser("~/.pyenv/versions/3.11.7/bin"))
             if os.path.exists(os.path.join(p, "python3"))]
    if not pyenv:
        pytest.skip("no pyenv CPython 3.11.7 on this machine (the fake-python test covers the mechanism)")
    server = gcorn("echo:app", "-k", "async", env={"PATH": pyenv[0] + os.pathsep + os.environ["PATH"]})
    with server.get("/") as r:
        assert r.status == 200


def make_venv(tmp_path, version):
    """A virtualenv as `python -m venv` lays it out, made from Python `version` (X.Y.Z)."""
    venv = tmp_path / ("venv-" + version)
    major_minor = ".".join(version.split(".")[:2])
    site = venv / "lib" / ("python" + major_minor) / "site-packages"
    site.mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = false\nversion = %s\n" % version)
    return venv, site


def test_a_virtualenv_of_the_right_python_is_used(gcorn, tmp_path):
    venv, site = make_venv(tmp_path, "%d.%d.%d" % sys.version_info[:3])
    (site / "venvonly.py").write_text("VALUE = 'from the venv'\n")
    app = "import venvonly\n\ndef app(environ, start_response):\n" \
          "    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [venvonly.VALUE.encode()]\n"
    server = gcorn(None, "--virtualenv", str(venv), source=app)
    with server.get("/") as r:
        assert r.read() == b"from the venv"
    # ... and as $VIRTUAL_ENV, the way an activated one is found.
    server = gcorn(None, source=app, env={"VIRTUAL_ENV": str(venv)})
    with server.get("/") as r:
        assert r.read() == b"from the venv"


@pytest.mark.parametrize("how", ["flag", "VIRTUAL_ENV"])
def test_a_virtualenv_of_another_python_is_refused_with_one_line(tmp_path, how):
    venv, _ = make_venv(tmp_path, "3.9.18")
    args = ["--virtualenv", str(venv)] if how == "flag" else []
    env = {"VIRTUAL_ENV": str(venv)} if how == "VIRTUAL_ENV" else {}
    r = run_gcorn(*args, "-b", "127.0.0.1:%d" % free_port(), "--pythonpath", str(APPS), "echo:app", env=env)
    assert r.returncode == 2
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    assert "3.9" in lines[0] and "%d.%d" % sys.version_info[:2] in lines[0]


# ---- signals and hooks as Gunicorn's ----

SLOW_APP = """
import time

def app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(10)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


@pytest.mark.parametrize("worker_class", ["sync", "gthread", "async"])
def test_quit_is_a_quick_stop(gcorn, worker_class):
    server = gcorn(None, "-k", worker_class, "--graceful-timeout", "60", source=SLOW_APP)
    stuck = server.connect(timeout=30)
    stuck.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.3)  # the request reaches the app
    server.proc.send_signal(signal.SIGQUIT)
    # Graceful would wait for the 10 s request (graceful_timeout is 60 s); quick cuts it.
    assert server.proc.wait(5) == 0
    assert stuck.recv(100) == b""  # the in-flight request was cut, not answered
    stuck.close()


def test_worker_int_runs_on_quit_even_with_a_request_stuck_in_the_app(gcorn, tmp_path):
    log = tmp_path / "hooks.log"
    server = gcorn(None, "--hook", "worker_int=hooked:worker_int", "--graceful-timeout", "60", source=SLOW_APP,
                   env={"HOOK_LOG": str(log)})
    worker = server.worker_pids()[0]
    stuck = server.connect(timeout=30)
    stuck.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.3)
    os.kill(worker, signal.SIGQUIT)  # to the worker itself: worker_int, then exit
    wait_until(lambda: log.exists() and ("worker_int %d %d" % (worker, worker)) in log.read_text())
    wait_until(lambda: worker not in server.worker_pids())
    stuck.close()


HOOK_OBJECTS = """
import json, os

seen = {}

def when_ready(server):
    seen["listeners"] = [s.getsockname()[1] for s in server.LISTENERS]
    seen["workers_dict"] = type(server.WORKERS).__name__

def post_fork(server, worker):
    worker.tmp.notify()
    worker.notify()
    seen["worker"] = {"timeout": worker.timeout, "max_requests": worker.max_requests,
                      "sockets": [s.getsockname()[1] for s in worker.sockets]}

def child_exit(server, worker):
    with open(os.environ["HOOK_LOG"], "a") as f:
        f.write("child_exit age=%d known=%s\\n" % (worker.age, worker.pid not in server.WORKERS))

def post_request(worker, req):
    with open(os.environ["HOOK_LOG"], "a") as f:
        f.write("post_request2 %s %s\\n" % (req.path, json.dumps(seen["worker"])))

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [json.dumps(seen).encode()]
"""


def test_hook_objects_carry_gunicorns_attributes_and_post_request_takes_two_arguments(gcorn, tmp_path):
    log = tmp_path / "hooks.log"
    args = []
    for h in ("when_ready", "post_fork", "child_exit", "post_request"):
        args += ["--hook", "%s=inline_app:%s" % (h, h)]
    server = gcorn(None, *args, "--max-requests", "1000", "-t", "25", source=HOOK_OBJECTS,
                   env={"HOOK_LOG": str(log)})
    with server.get("/x") as r:
        assert r.status == 200
    wait_until(lambda: log.exists() and "post_request2 /x" in log.read_text())
    line = [l for l in log.read_text().splitlines() if l.startswith("post_request2")][0]
    worker = json.loads(line.split(" ", 2)[2])
    assert worker == {"timeout": 25.0, "max_requests": 1000, "sockets": [server.port]}
    os.kill(server.worker_pids()[0], 9)
    wait_until(lambda: "child_exit age=1 known=True" in log.read_text())


# ---- systemd (Type=notify) ----

def notify_listener(tmp_path):
    import socket
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(30)
    return sock, str(path)


def wait_notify(sock, text, seen):
    """Reads datagrams until one contains `text`; every message is appended to `seen`."""
    while True:
        msg = sock.recv(4096).decode()
        seen.append(msg)
        if text in msg:
            return msg


def test_systemd_notify_ready_reloading_stopping(gcorn, tmp_path):
    sock, path = notify_listener(tmp_path)
    # daemon = true (as the Debian package writes it) is ignored under systemd: the unit follows this process.
    server = gcorn("echo:app", "-D", env={"NOTIFY_SOCKET": path})
    seen = []
    ready = wait_notify(sock, "READY=1", seen)
    assert "STATUS=" in ready
    assert server.proc.poll() is None  # not daemonized
    server.proc.send_signal(signal.SIGHUP)
    wait_notify(sock, "RELOADING=1", seen)
    wait_notify(sock, "READY=1", seen)
    server.proc.send_signal(signal.SIGTERM)
    wait_notify(sock, "STOPPING=1", seen)
    assert server.proc.wait(20) == 0
    # Only the master spoke: workers do not inherit NOTIFY_SOCKET.
    assert all(not m.startswith("READY=1") or "Serving" in m for m in seen)


# ---- Gunicorn's leniencies: case-insensitive log level, clamped limits, what curl sends ----

def test_log_level_in_any_case(gcorn):
    server = gcorn("echo:app", "--log-level", "DEBUG")
    assert "[DEBUG]" in server.log()


def test_limits_above_the_maximum_are_clamped(gcorn):
    server = gcorn("echo:app", "--limit-request-line", "16384", "--limit-request-fields", "100000")
    ok = server.raw(b"GET /" + b"a" * 8000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200")
    too_long = server.raw(b"GET /" + b"a" * 8200 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert too_long.startswith(b"HTTP/1.1 414")  # clamped to 8190, as Gunicorn does


def test_curl_with_a_utf8_path_is_served(gcorn):
    server = gcorn("echo:app")
    out = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", server.url("/café")],
                         capture_output=True, timeout=30)
    body, _, code = out.stdout.rpartition(b"\n")
    assert code == b"200", out
    environ = json.loads(body)
    assert environ["PATH_INFO"].encode("latin-1").decode() == "/café"  # PEP 3333: bytes as latin-1 code points
    # This curl percent-encodes the path; other clients (and older curls) send the UTF-8 bytes raw.
    raw = server.raw("GET /café HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert raw.startswith(b"HTTP/1.1 200")
    environ = json.loads(raw.partition(b"\r\n\r\n")[2])
    assert environ["RAW_URI"].encode("latin-1") == "/café".encode()  # RAW_URI keeps the bytes as sent
    assert environ["PATH_INFO"].encode("latin-1").decode() == "/café"


# ---- logs and environ as Gunicorn's ----

ENVIRON_FLAGS_APP = """
import json

def app(environ, start_response):
    if environ["PATH_INFO"] == "/empty":
        start_response("204 No Content", [])
        return [b""]
    body = json.dumps({"multithread": environ["wsgi.multithread"],
                       "multiprocess": environ["wsgi.multiprocess"]}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
"""


@pytest.mark.parametrize("args, multithread, multiprocess", [
    (["-k", "sync"], False, False),
    (["-k", "sync", "-w", "2"], False, True),
    (["-k", "gthread", "--threads", "2"], True, False),
    (["-k", "async"], True, False),  # as Gunicorn's gevent worker
])
def test_wsgi_multithread_and_multiprocess_as_gunicorn_sets_them(gcorn, args, multithread, multiprocess):
    server = gcorn(None, *args, source=ENVIRON_FLAGS_APP)
    assert json_get(server) == {"multithread": multithread, "multiprocess": multiprocess}


def access_line(server, logfile, marker):
    wait_until(lambda: logfile.exists() and marker in logfile.read_text())
    return [l for l in logfile.read_text().splitlines() if marker in l][-1]


def test_access_log_atoms_as_gunicorn_prints_them(gcorn, tmp_path):
    import base64
    import http.client
    logfile = tmp_path / "access.log"
    fmt = '%(u)s|%(U)s|%(b)s|%({user-agent}i)s|%({path_info}e)s'
    server = gcorn(None, "--access-logfile", str(logfile), "--access-logformat", fmt, source=ENVIRON_FLAGS_APP)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    auth = base64.b64encode(b"alice:s3cret").decode()
    conn.request("GET", "/caf%C3%A9/x", headers={"Authorization": "Basic " + auth, "User-Agent": 'say "hi"'})
    conn.getresponse().read()
    line = access_line(server, logfile, "alice")
    user, path, size, agent, env_path = line.split("|")
    assert user == "alice"                                           # %(u)s: the Basic-auth user
    assert path.encode("latin-1").decode() == "/café/x"              # %(U)s: the decoded PATH_INFO
    assert agent == 'say \\"hi\\"'                                   # a quote in a value is escaped
    assert env_path == path                                          # %({key}e)s in any case
    conn.request("GET", "/empty")
    conn.getresponse().read()
    assert access_line(server, logfile, "|/empty|").split("|")[2] == "0"  # %(b)s: 0, not "-"


def test_error_log_time_zone_as_gunicorn(gcorn):
    server = gcorn("echo:app")
    first = server.log().splitlines()[0]
    import re
    assert re.match(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[\d+\] \[INFO\] ", first), first


# ---- every Gunicorn setting: same, different, or refused by name ----

ROOT_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def readme_table():
    text = open(os.path.join(ROOT_DIR, "README.md")).read()
    return text.split("<!-- gunicorn-settings:begin -->\n")[1].split("<!-- gunicorn-settings:end -->")[0]


def table_rows():
    rows = {}
    for line in readme_table().splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = cells
    return rows


def test_readme_table_is_what_the_binary_prints():
    r = run_gcorn("--print-gunicorn-settings")
    assert r.returncode == 0, r.stderr
    assert r.stdout == readme_table()


def test_readme_table_covers_every_gunicorn_setting():
    lines = open(os.path.join(ROOT_DIR, "tests", "data", "gunicorn_settings.txt")).read().splitlines()
    gunicorn = {l for l in lines if l and not l.startswith("#")}
    older = {"tolerate_dangerous_framing"}  # Gunicorn 22-23 (and Debian's backport), gone in 26.1
    assert set(table_rows()) == gunicorn | older
    # ... and the Gunicorn installed here (Debian's, older) has nothing the table lacks.
    r = subprocess.run([sys.executable, "-c", "import gunicorn.config as c; print(' '.join(s.name for s in c.KNOWN_SETTINGS))"],
                       capture_output=True, text=True)
    if r.returncode == 0:
        assert set(r.stdout.split()) <= set(table_rows())


@pytest.mark.parametrize("args", [
    ["--dirty-workers", "2"], ["--uwsgi-allow-from", "127.0.0.1"], ["--http-protocols", "h2"],
])
def test_a_refused_gunicorn_flag_is_named_not_unexpected(args):
    r = run_gcorn(*args, "echo:app")
    assert r.returncode == 2
    assert "is a Gunicorn setting gcorn does not support" in r.stderr and "not expected" not in r.stderr, r.stderr
    name = [n for n, cells in table_rows().items() if ("`%s`" % args[0]) in cells[1]][0]
    assert "'%s'" % name in r.stderr


@pytest.mark.parametrize("kind", ["toml", "py"])
def test_a_refused_setting_in_a_file_names_the_file_and_setting(tmp_path, kind):
    path = tmp_path / ("conf." + kind)
    path.write_text('dirty_workers = 2\n')
    r = run_gcorn("-c", str(path), "echo:app")
    assert r.returncode == 2
    assert str(path.name) in r.stderr and "'dirty_workers' is a Gunicorn setting" in r.stderr, r.stderr


# ---- sendfile, spew, enable_stdio_inheritance ----

FILE_WRAPPER_APP = """
import os

reads = [0]

class CountingFile:
    def __init__(self, path):
        self.f = open(path, "rb")
    def fileno(self):
        return self.f.fileno()
    def tell(self):
        return self.f.tell()
    def read(self, n=-1):
        reads[0] += 1
        return self.f.read(n)
    def close(self):
        self.f.close()

def app(environ, start_response):
    if environ["PATH_INFO"] == "/reads":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(reads[0]).encode()]
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](CountingFile(os.environ["BIG_FILE"]), 65536)
"""


@pytest.mark.parametrize("args, reads_expected", [([], False), (["--no-sendfile"], True)])
def test_sendfile_setting(gcorn, tmp_path, args, reads_expected):
    big = tmp_path / "big.bin"
    data = os.urandom(300_000)
    big.write_bytes(data)
    server = gcorn(None, *args, source=FILE_WRAPPER_APP, env={"BIG_FILE": str(big)})
    with server.get("/file") as r:
        assert r.read() == data
    with server.get("/reads") as r:
        reads = int(r.read())
    assert (reads > 0) == reads_expected  # sendfile(2) never calls the file's read()


def test_spew_prints_every_line_the_worker_runs(gcorn, tmp_path):
    log = tmp_path / "error.log"
    app = "def app(environ, start_response):\n    marker = 'spewed'\n" \
          "    start_response('200 OK', [])\n    return [marker.encode()]\n"
    server = gcorn(None, "--spew", "--capture-output", "--error-logfile", str(log), source=app)
    with server.get("/") as r:
        assert r.read() == b"spewed"
    wait_until(lambda: "inline_app.py:2:     marker = 'spewed'" in log.read_text())


@pytest.mark.parametrize("inherit", [False, True])
def test_enable_stdio_inheritance_keeps_a_daemons_stdout(tmp_path, inherit):
    port, pidfile, out = free_port(), tmp_path / "d.pid", tmp_path / "stdout.txt"
    (tmp_path / "printer.py").write_text("print('printed at import', flush=True)\n"
                                         "def app(environ, start_response):\n"
                                         "    start_response('200 OK', [])\n    return [b'ok']\n")
    args = ["-D", "-p", str(pidfile), "-b", "127.0.0.1:%d" % port, "--pythonpath", str(tmp_path)]
    args += ["-R"] if inherit else []
    with open(out, "wb") as stdout:
        r = subprocess.run([GCORN, *args, "printer:app"], stdout=stdout,
                           stderr=subprocess.STDOUT, timeout=20)
    assert r.returncode == 0
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip())
    pid = int(pidfile.read_text())
    try:
        import socket as sk
        def served():
            try:
                with sk.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    return b"200 OK" in s.recv(100)
            except OSError:
                return False
        wait_until(served)
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not pidfile.exists())
    assert ("printed at import" in out.read_text()) == inherit


# ---- statsd, as Gunicorn's instrumentation ----

def statsd_listener(kind, tmp_path):
    import socket as sk
    if kind == "udp":
        sock = sk.socket(sk.AF_INET, sk.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        address = "127.0.0.1:%d" % sock.getsockname()[1]
    else:
        path = str(tmp_path / "statsd.sock")
        sock = sk.socket(sk.AF_UNIX, sk.SOCK_DGRAM)
        sock.bind(path)
        address = "unix://" + path
    sock.settimeout(20)
    return sock, address


@pytest.mark.parametrize("kind", ["udp", "unix"])
def test_statsd_metrics_with_gunicorns_names(gcorn, tmp_path, kind):
    sock, address = statsd_listener(kind, tmp_path)
    server = gcorn("echo:app", "--statsd-host", address, "--statsd-prefix", "myapp", "--dogstatsd-tags", "env:test")
    for path in ("/a", "/b", "/c"):
        with server.get(path) as r:
            r.read()
    packets = []
    wanted = ("myapp.gunicorn.requests:", "myapp.gunicorn.request.status.200:", "myapp.gunicorn.request.duration:",
              "myapp.gunicorn.workers:")
    while not all(sum(p.startswith(w) for p in packets) >= (1 if w.endswith("workers:") else 3) for w in wanted):
        packets.append(sock.recv(4096).decode())
    assert "myapp.gunicorn.requests:1|c|@1.0|#env:test" in packets
    assert "myapp.gunicorn.request.status.200:1|c|@1.0|#env:test" in packets
    duration = [p for p in packets if p.startswith("myapp.gunicorn.request.duration:")][0]
    assert duration.endswith("|ms|#env:test") and float(duration.split(":")[1].split("|")[0]) >= 0
    workers = [p for p in packets if p.startswith("myapp.gunicorn.workers:")][0]
    assert workers == "myapp.gunicorn.workers:1|g|#env:test"


def test_statsd_counts_error_log_lines(gcorn, tmp_path):
    sock, address = statsd_listener("udp", tmp_path)
    app = "def app(environ, start_response):\n    raise RuntimeError('boom')\n"
    server = gcorn(None, "--statsd-host", address, source=app)
    with pytest.raises(Exception):
        server.get("/")
    packets = []
    while not {"gunicorn.log.error:1|c|@1.0", "gunicorn.request.status.500:1|c|@1.0"} <= set(packets):
        packets.append(sock.recv(4096).decode())  # the traceback line is counted, and so is the 500


BLOCKING_APP = """
import os, time

def app(environ, start_response):
    release = os.path.join(os.path.dirname(__file__), "release")
    for _ in range(600):
        if environ["PATH_INFO"] != "/block" or os.path.exists(release):
            break
        time.sleep(0.05)
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]
"""


def test_enable_backlog_metric_counts_connections_waiting_to_be_accepted(gcorn, tmp_path):
    import socket as sk
    sock, address = statsd_listener("udp", tmp_path)
    server = gcorn(None, "--statsd-host", address, "--enable-backlog-metric", source=BLOCKING_APP)
    busy = server.connect()
    busy.sendall(b"GET /block HTTP/1.1\r\nHost: x\r\n\r\n")  # the only (sync) worker is now busy
    waiting = [sk.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
    try:
        backlog = []
        while not any(v >= 3 for v in backlog):  # the kernel's accept queue, as the master saw it
            packet = sock.recv(4096).decode()
            if packet.startswith("gunicorn.backlog:"):
                assert packet.endswith("|h"), packet
                backlog.append(int(packet.split(":")[1].split("|")[0]))
    finally:
        (tmp_path / "release").write_text("")
        for c in waiting + [busy]:
            c.close()


def test_tmp_upload_dir_is_accepted_as_gunicorn_accepts_it(gcorn, tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text('tmp_upload_dir = "/tmp"\n')
    server = gcorn("echo:app", "-c", str(tmp_path / "gunicorn.conf.py"))
    with server.get("/") as r:
        assert r.status == 200


def test_a_bad_statsd_address_is_a_clear_error():
    r = run_gcorn("--statsd-host", "no-port-here", "echo:app")
    assert r.returncode == 2 and "statsd_host" in r.stderr


@pytest.mark.parametrize("mode", ["drop", "refuse", "dangerous"])
def test_header_map_as_gunicorns(gcorn, mode):
    server = gcorn("echo:app", "--header-map", mode)
    raw = server.raw(b"GET / HTTP/1.1\r\nHost: x\r\nX_Spoofed_For: 1.2.3.4\r\nConnection: close\r\n\r\n")
    if mode == "refuse":
        assert raw.startswith(b"HTTP/1.1 400")
        return
    assert raw.startswith(b"HTTP/1.1 200")
    mapped = b'"X_SPOOFED_FOR": "1.2.3.4"' in raw  # echo lists the HTTP_* keys without their prefix
    assert mapped == (mode == "dangerous")


# ---- reload: a changed file replaces the workers; a broken edit keeps the old ones serving ----

RELOAD_APP = """
import helper

def app(environ, start_response):
    body = helper.VERSION.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""


def body_of(server):
    with server.get("/") as r:
        return r.read()


def wait_for_body(server, expected, deadline_s=30):
    # The edit is served once a new worker has loaded it; on a loaded CI core that can take a while, so this
    # waits for what the server serves rather than timing it (the settle delay itself is 0.2 s).
    seen = None
    for _ in range(int(deadline_s / 0.05)):
        seen = body_of(server)
        if seen == expected:
            return
        time.sleep(0.05)
    raise AssertionError("still serving %r, not %r" % (seen, expected))


@pytest.mark.parametrize("engine", ["auto", "poll"])
def test_reload_serves_an_edited_module_and_survives_a_broken_edit(gcorn, tmp_path, engine):
    helper = tmp_path / "helper.py"
    helper.write_text('VERSION = "one"\n')
    server = gcorn("inline_app:app", "-w", "2", "--reload", "--reload-engine", engine, source=RELOAD_APP)
    assert body_of(server) == b"one"
    server.wait_for_log("reload: watching")  # the master has read what the workers imported
    first_workers = set(server.worker_pids())

    helper.write_text('VERSION = "two"\n')  # a module the app imported, not the app's own file
    wait_for_body(server, b"two")
    server.wait_for_log("Worker reloading: %s modified" % helper)
    wait_until(lambda: not (set(server.worker_pids()) & first_workers))  # every old worker was replaced
    assert len(server.worker_pids()) == 2

    second_workers = set(server.worker_pids())
    helper.write_text('VERSION = "three" +\n')  # a syntax error: the new workers cannot load the app
    server.wait_for_log("Reload failed")
    assert "SyntaxError" in server.log()
    assert set(server.worker_pids()) == second_workers and body_of(server) == b"two"  # the old code still serves
    assert server.proc.poll() is None

    helper.write_text('VERSION = "four"\n')  # fixed: the next edit loads again
    wait_for_body(server, b"four")


def test_reload_extra_files_trigger_a_reload(gcorn, tmp_path):
    (tmp_path / "helper.py").write_text('VERSION = "one"\n')
    template = tmp_path / "page.tmpl"
    template.write_text("a")
    server = gcorn("inline_app:app", "--reload", "--reload-extra-file", str(tmp_path / "*.tmpl"), source=RELOAD_APP)
    before = set(server.worker_pids())
    template.write_text("b")
    server.wait_for_log("Worker reloading: %s modified" % template)
    wait_until(lambda: server.worker_pids() and not (set(server.worker_pids()) & before))


# ---- logconfig, logconfig_dict, logconfig_json, syslog: through Python's logging, as Gunicorn's ----

# A JSON formatter as users write them: the access record's args are Gunicorn's atoms.
JSON_FORMATTER = """
import json, logging

class AccessJson(logging.Formatter):
    def format(self, record):
        atoms = record.args
        return json.dumps({"logger": record.name, "status": atoms["s"], "path": atoms["U"],
                           "agent": atoms["{user-agent}i"], "missing": atoms["{x-nope}i"], "line": record.getMessage()})
"""

LOGCONFIG_DICT_CONF = """
logconfig_dict = {
    "formatters": {"json": {"()": "jsonfmt.AccessJson"},
                   "plain": {"format": "ERRORLINE %%(levelname)s %%(name)s %%(message)s"}},
    "handlers": {"access_file": {"class": "logging.FileHandler", "filename": %(access)r, "formatter": "json"},
                 "error_file": {"class": "logging.FileHandler", "filename": %(error)r, "formatter": "plain"}},
    "loggers": {"gunicorn.access": {"handlers": ["access_file"], "level": "INFO", "propagate": False},
                "gunicorn.error": {"handlers": ["error_file"], "level": "INFO", "propagate": False}},
}
"""


LOGCONFIG_TOML = """
[logconfig_dict.formatters.json]
"()" = "jsonfmt.AccessJson"

[logconfig_dict.formatters.plain]
format = "ERRORLINE %%(levelname)s %%(name)s %%(message)s"

[logconfig_dict.handlers.access_file]
class = "logging.FileHandler"
filename = "%(access)s"
formatter = "json"

[logconfig_dict.handlers.error_file]
class = "logging.FileHandler"
filename = "%(error)s"
formatter = "plain"

[logconfig_dict.loggers."gunicorn.access"]
handlers = ["access_file"]
level = "INFO"
propagate = false

[logconfig_dict.loggers."gunicorn.error"]
handlers = ["error_file"]
level = "INFO"
propagate = false
"""


def read_lines(path):
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("kind", ["py", "toml", "json"])
def test_logconfig_dict_routes_both_logs_through_python_logging(gcorn, tmp_path, kind):
    (tmp_path / "jsonfmt.py").write_text(JSON_FORMATTER)
    access, error = tmp_path / "access.json", tmp_path / "error.txt"
    conf = LOGCONFIG_DICT_CONF % {"access": str(access), "error": str(error)}
    namespace = {}
    exec(conf, namespace)
    if kind == "py":
        (tmp_path / "gunicorn.conf.py").write_text(conf)
        args = ["-c", str(tmp_path / "gunicorn.conf.py")]
    elif kind == "toml":
        (tmp_path / "g.toml").write_text(LOGCONFIG_TOML % {"access": str(access), "error": str(error)})
        args = ["-c", str(tmp_path / "g.toml")]
    else:
        (tmp_path / "logging.json").write_text(json.dumps(namespace["logconfig_dict"]))
        args = ["--log-config-json", str(tmp_path / "logging.json")]
    server = gcorn("echo:app", *args)
    import urllib.request
    request = urllib.request.Request(server.url("/caf%C3%A9?q=1"), headers={"User-Agent": 'say "hi"'})
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.status == 200
    wait_until(lambda: [line for line in read_lines(access) if "caf" in line])
    record = json.loads([line for line in read_lines(access) if "caf" in line][0])
    assert record == {"logger": "gunicorn.access", "status": "200", "path": "/caf\u00c3\u00a9",
                      "agent": 'say \\"hi\\"', "missing": "-", "line": record["line"]}
    assert '"GET /caf%C3%A9?q=1 HTTP/1.1" 200' in record["line"]
    # The master's and the workers' error lines went through gunicorn.error's handler, in its format.
    wait_until(lambda: any("Booting worker with pid" in line for line in read_lines(error)))
    assert all(line.startswith("ERRORLINE ") for line in read_lines(error) if line and not line[0].isspace())
    assert any(line.startswith("ERRORLINE INFO gunicorn.error Listening at") or "Booting worker" in line
               for line in read_lines(error))


def test_logconfig_ini_file(gcorn, tmp_path):
    error = tmp_path / "error.txt"
    (tmp_path / "logging.ini").write_text("""
[loggers]
keys=root, gunicorn.error

[handlers]
keys=file

[formatters]
keys=ini

[logger_root]
level=INFO
handlers=file

[logger_gunicorn.error]
level=DEBUG
handlers=file
propagate=0
qualname=gunicorn.error

[handler_file]
class=FileHandler
formatter=ini
args=(%r,)

[formatter_ini]
format=INI|%%(levelname)s|%%(message)s
""" % str(error))
    server = gcorn("echo:app", "--log-config", str(tmp_path / "logging.ini"), "--log-level", "info")
    with server.get("/") as r:
        r.read()
    wait_until(lambda: any(line.startswith("INI|INFO|Booting worker with pid") for line in read_lines(error)))
    # the file's level (DEBUG) wins over --log-level, as when Gunicorn's fileConfig runs after its own set-up
    wait_until(lambda: any(line.startswith("INI|DEBUG|") for line in read_lines(error)))


def test_a_bad_logconfig_dict_is_a_clear_error(tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text('logconfig_dict = {"handlers": {"h": {"class": "no.such.Handler"}}}\n')
    r = run_gcorn("-c", str(tmp_path / "gunicorn.conf.py"), "echo:app", timeout=30)
    assert r.returncode != 0 and "logconfig_dict" in r.stderr and "Traceback" in r.stderr, r.stderr


@pytest.mark.parametrize("redirect_access", [True, False])
def test_syslog_gets_gunicorns_lines(gcorn, tmp_path, redirect_access):
    import socket as sk
    sock = sk.socket(sk.AF_INET, sk.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(20)
    args = ["--log-syslog", "--log-syslog-to", "udp://127.0.0.1:%d" % sock.getsockname()[1],
            "--log-syslog-prefix", "shop", "--log-syslog-facility", "local3", "--access-logfile", "-"]
    if not redirect_access:
        args.append("--disable-redirect-access-to-syslog")
    server = gcorn("echo:app", *args)
    with server.get("/syslogged") as r:
        r.read()
    lines = []
    while not any("Booting worker" in line for line in lines):
        lines.append(sock.recv(65536).decode())
    # <PRI>: local3 (19) * 8 + info (6) = 158; Gunicorn's program name and format
    assert any(line.startswith("<158>gunicorn.shop.error: [") and "Booting worker with pid" in line for line in lines)
    if redirect_access:
        while not any("/syslogged" in line for line in lines):
            lines.append(sock.recv(65536).decode())
        assert any(line.startswith("<158>gunicorn.shop.access: [") and '"GET /syslogged HTTP/1.1" 200' in line
                   for line in lines)
    else:
        server.wait_for_log('"GET /syslogged HTTP/1.1" 200')  # the access log file still has it
        sock.settimeout(1)
        try:
            while True:
                assert "/syslogged" not in sock.recv(65536).decode()
        except sk.timeout:
            pass
    # the error log stays where it was (stderr, the test's log file) as well
    server.wait_for_log("Booting worker with pid")


# ---- Gunicorn's opt-in HTTP relaxations: refused by default, accepted with the flag ----

def echo_report(raw):
    status, _, body = raw.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 200"), raw
    return json.loads(body)


@pytest.mark.parametrize("flag, request_head, check", [
    ("--strip-header-spaces", b"GET / HTTP/1.1\r\nHost: x\r\nX-Name \t: spaced\r\n",
     lambda r: r["headers"]["X_NAME"] == "spaced"),
    ("--permit-obsolete-folding", b"GET / HTTP/1.1\r\nHost: x\r\nX-Folded: one\r\n  two\r\n\ttwo-b\r\n",
     lambda r: r["headers"]["X_FOLDED"] == "one two two-b"),
    ("--permit-unconventional-http-method", b"propfind-but-lower-case-and-long / HTTP/1.1\r\nHost: x\r\n",
     lambda r: r["REQUEST_METHOD"] == "propfind-but-lower-case-and-long"),
    ("--permit-unconventional-http-version", b"GET / HTTP/2.0\r\nHost: x\r\n",
     lambda r: r["SERVER_PROTOCOL"] == "HTTP/2.0"),
])
def test_http_relaxations_are_opt_in_as_gunicorns(gcorn, flag, request_head, check):
    raw = request_head + b"Connection: close\r\n\r\n"
    strict = gcorn("echo:app")
    refused = strict.raw(raw)
    assert refused.startswith((b"HTTP/1.1 400", b"HTTP/1.1 505")), refused
    lenient = gcorn("echo:app", flag)
    assert check(echo_report(lenient.raw(raw)))


def test_casefold_http_method(gcorn):
    server = gcorn("echo:app", "--permit-unconventional-http-method", "--casefold-http-method")
    assert echo_report(server.raw(b"get / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))["REQUEST_METHOD"] == "GET"


def test_an_unconventional_version_is_served_as_the_nearest_one(gcorn):
    server = gcorn("echo:app", "--permit-unconventional-http-version")
    raw = server.raw(b"GET / HTTP/0.9\r\nHost: x\r\n\r\n")  # served as HTTP/1.0: closes after the response
    assert raw.startswith(b"HTTP/1.0 200") and json.loads(raw.partition(b"\r\n\r\n")[2])["SERVER_PROTOCOL"] == "HTTP/0.9"


@pytest.mark.parametrize("trusted", [True, False])
def test_forwarder_headers_mount_the_app_under_a_trusted_proxys_script_name(gcorn, trusted):
    args = ["--forwarded-allow-ips", "127.0.0.1" if trusted else "10.9.9.9"]
    server = gcorn("echo:app", *args)
    raw = server.raw(b"GET /prefix/page HTTP/1.1\r\nHost: x\r\nSCRIPT_NAME: /prefix/\r\n"
                     b"REMOTE_USER: alice\r\nConnection: close\r\n\r\n")
    r = echo_report(raw)
    if trusted:
        assert (r["SCRIPT_NAME"], r["PATH_INFO"]) == ("/prefix", "/page")
        assert r["headers"]["SCRIPT_NAME"] == "/prefix/"
        assert "REMOTE_USER" not in r["headers"]  # not in forwarder_headers: dropped as any '_' name
    else:
        assert (r["SCRIPT_NAME"], r["PATH_INFO"]) == ("", "/prefix/page")
        assert "SCRIPT_NAME" not in r["headers"]
    listed = gcorn("echo:app", "--forwarder-headers", "SCRIPT_NAME, REMOTE_USER", *args)
    r = echo_report(listed.raw(b"GET / HTTP/1.1\r\nHost: x\r\nREMOTE_USER: alice\r\nConnection: close\r\n\r\n"))
    assert r["headers"].get("REMOTE_USER") == ("alice" if trusted else None)


# ---- PasteDeploy (--paste), as Gunicorn's ----

PASTE_APP = """
def factory(global_conf, **local_conf):
    greeting = local_conf.get("greeting", "?") + " " + global_conf.get("who", "?")

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [greeting.encode()]
    return app
"""

PASTE_INI = """
[DEFAULT]
who = nobody

[app:main]
paste.app_factory = pasteapp:factory
greeting = hello

[app:other]
paste.app_factory = pasteapp:factory
greeting = bonjour
"""


@pytest.mark.parametrize("target, args, expected", [
    ("app.ini", [], b"hello nobody"),
    ("app.ini#other", ["--paste-global", "who=paste"], b"bonjour paste"),
])
def test_paste_deploy_app(gcorn, tmp_path, target, args, expected):
    (tmp_path / "pasteapp.py").write_text(PASTE_APP)
    (tmp_path / "app.ini").write_text(PASTE_INI)
    server = gcorn(None, "--paste", str(tmp_path / target), *args)
    with server.get("/") as r:
        assert r.read() == expected
    assert "gcorn: master [%s]" % (tmp_path / target) in subprocess.run(
        ["ps", "-o", "args=", "-p", str(server.pid)], capture_output=True, text=True).stdout
