# Logging: the error log (stderr or a file, --log-level), the access log with Gunicorn's atoms, and
# --capture-output; plus max_requests recycling, which is visible in the log.
import re
import time
import urllib.request

from conftest import get_all


def test_access_log_off_by_default(gcorn):
    server = gcorn("echo:app")
    with server.get("/quiet") as r:
        r.read()
    assert '"GET /quiet HTTP/1.1"' not in server.log()


def test_access_log_default_format(gcorn):
    server = gcorn("echo:app", "--access-logfile", "-")
    req = urllib.request.Request(server.url("/p?q=1"), headers={"User-Agent": "ua/1", "Referer": "http://r/"})
    with urllib.request.urlopen(req, timeout=10) as r:
        length = len(r.read())
    server.wait_for_log('"GET /p?q=1 HTTP/1.1"')
    line = [l for l in server.log().splitlines() if "/p?q=1" in l][0]
    # %(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"
    assert re.fullmatch(r'127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
                        r'"GET /p\?q=1 HTTP/1\.1" 200 %d "http://r/" "ua/1"' % length, line), line


def test_access_log_custom_atoms(gcorn, tmp_path):
    logfile = tmp_path / "access.log"
    fmt = "%(m)s %(U)s %(q)s %(H)s %(s)s %(B)s %({x-id}i)s %({content-type}o)s %({REMOTE_ADDR}e)s D=%(D)s p=%(p)s"
    server = gcorn("echo:app", "--access-logfile", str(logfile), "--access-logformat", fmt)
    req = urllib.request.Request(server.url("/a/b?c=d"), headers={"X-Id": "42"})
    with urllib.request.urlopen(req, timeout=10) as r:
        length = len(r.read())
    deadline = time.time() + 5
    while "/a/b" not in (logfile.read_text() if logfile.exists() else "") and time.time() < deadline:
        time.sleep(0.05)
    line = [l for l in logfile.read_text().splitlines() if "/a/b" in l][0]
    m = re.fullmatch(r"GET /a/b c=d HTTP/1\.1 200 (\d+) 42 application/json 127\.0\.0\.1 D=(\d+) p=<(\d+)>", line)
    assert m, line
    assert int(m.group(1)) == length
    assert int(m.group(3)) in server.worker_pids()


def test_async_access_log_batches_whole_lines_from_every_worker(gcorn, tmp_path):
    # The async worker writes its access lines in batches (one write before its reactor waits): no line may be
    # lost, split or mixed with another worker's appending to the same file, and the last batch is written while
    # the server then sits idle, not only at exit.
    logfile = tmp_path / "access.log"
    server = gcorn("echo:app", "-k", "async", "-w", "2", "--access-logfile", str(logfile))
    total = 600
    paths = ["/batch/%d" % i for i in range(total)]
    responses = get_all(server.port, paths)
    assert all(r.startswith(b"HTTP/1.1 200 ") for r in responses)
    deadline = time.time() + 20
    while logfile.read_text().count("\n") < total and time.time() < deadline:
        time.sleep(0.05)
    lines = [l for l in logfile.read_text().splitlines() if "/batch/" in l]
    pattern = re.compile(r'127\.0\.0\.1 - - \[[^]]+\] "GET (/batch/\d+) HTTP/1\.1" 200 \d+ "-" "-"')
    assert all(pattern.fullmatch(l) for l in lines), [l for l in lines if not pattern.fullmatch(l)][:3]
    assert sorted(pattern.fullmatch(l).group(1) for l in lines) == sorted(paths)


def test_error_log_file_and_level(gcorn, tmp_path):
    logfile = tmp_path / "error.log"
    server = gcorn("echo:app", "--error-logfile", str(logfile), "--log-level", "warning")
    with server.get("/") as r:
        r.read()
    server.stop()
    assert "Booting worker" not in logfile.read_text()  # info is below warning
    server2 = gcorn("echo:app", "--error-logfile", str(logfile), "--log-level", "info")
    server2.stop()
    assert re.search(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [^\]]+\] \[\d+\] \[INFO\] Booting worker with pid: \d+$",
                     logfile.read_text(), re.M)


def test_capture_output_sends_print_to_error_log(gcorn, tmp_path):
    logfile = tmp_path / "error.log"
    source = ("import sys\n"
              "def app(environ, start_response):\n"
              "    print('printed by the app', flush=True)\n"
              "    sys.stderr.write('stderr from the app\\n'); sys.stderr.flush()\n"
              "    start_response('200 OK', [('Content-Length', '2')])\n"
              "    return [b'ok']\n")
    server = gcorn(None, "--error-logfile", str(logfile), "--capture-output", source=source)
    with server.get("/") as r:
        assert r.read() == b"ok"
    server.stop()
    text = logfile.read_text()
    assert "printed by the app" in text and "stderr from the app" in text


def test_max_requests_recycles_the_worker(gcorn):
    source = ("import os\n"
              "def app(environ, start_response):\n"
              "    body = str(os.getpid()).encode()\n"
              "    start_response('200 OK', [('Content-Length', str(len(body)))])\n"
              "    return [body]\n")
    server = gcorn(None, "--max-requests", "3", source=source)
    pids = []
    for _ in range(7):
        for attempt in range(50):
            try:
                with server.get("/") as r:
                    pids.append(int(r.read()))
                break
            except OSError:
                time.sleep(0.05)  # the worker is being replaced
    assert len(pids) == 7
    # The fixture's readiness probe was the first worker's first request.
    assert len(set(pids[:2])) == 1 and pids[2] != pids[0]
    assert len(set(pids[2:5])) == 1 and pids[5] != pids[2]
    assert "Autorestarting worker after current request." in server.log()
