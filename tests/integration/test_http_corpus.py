# The raw-request corpus (tests/data/requests, DESIGN §7) against the real binary: a valid request reaches the
# echo app as its .json says; an invalid one gets its status, nothing more, and a closed connection (DESIGN §6).
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import APPS, GCORN, ROOT, Server, free_port, split_framed, wait_ready

CORPUS = ROOT / "tests" / "data" / "requests"
_ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|.)", re.S)
_BYTES = {b"r": b"\r", b"n": b"\n", b"t": b"\t", b"0": b"\0", b"\\": b"\\"}


def load_request(path):
    """The bytes a .http file stands for: real newlines dropped, \\r \\n \\t \\0 \\xHH \\\\ decoded (README.md)."""
    path = Path(path)
    text = path.read_bytes().replace(b"\r", b"").replace(b"\n", b"")

    def byte(m):
        code = m.group(1)
        if code[:1] == b"x" and len(code) == 3:
            return bytes([int(code[1:], 16)])
        if code not in _BYTES:
            raise ValueError("%s: unknown escape \\%s" % (path, code.decode("latin-1")))
        return _BYTES[code]

    return _ESCAPE.sub(byte, text)


def cases(kind):
    paths = sorted((CORPUS / kind).glob("*.http"))
    return [pytest.param(p, id=p.stem) for p in paths]


def expectation(path):
    return json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))


def start_module_server(workdir, app, *args, source=None):
    """Starts gcorn once for a whole module (the conftest fixture starts one per test); returns a Server."""
    if source is not None:
        (workdir / "inline_app.py").write_text(source)
    port = free_port()
    log_path = workdir / "gcorn.log"
    env = dict(os.environ)
    env.pop("GCORN_CMD_ARGS", None)
    cmd = [GCORN, "-b", "127.0.0.1:%d" % port, "--pythonpath", "%s,%s" % (workdir, APPS), "--log-level", "debug",
           *args, app]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env=env)
    server = Server(proc, port, log_path, workdir)
    try:
        wait_ready(proc, port, log_path)
    except BaseException:
        server.stop()
        raise
    return server


def stop_module_server(server):
    assert server.stop() == 0, server.log()
    assert not server.worker_pids()  # no orphans


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start_module_server(tmp_path_factory.mktemp("corpus"), "echo:app")
    yield server
    stop_module_server(server)


def test_corpus_is_there():
    # An empty or misplaced corpus would parametrize nothing and pass silently.
    assert len(cases("valid")) >= 30 and len(cases("invalid")) >= 90


@pytest.mark.parametrize("path", cases("valid"))
def test_valid_request_reaches_the_app(server, path):
    want = expectation(path)
    # Half-close after sending, as for invalid ones: a complete request is served all the same.
    status, headers, body, extra = split_framed(server.raw(load_request(path), shutdown=True))
    assert status == want["version"] + " 200 OK", body
    assert extra == b""
    env = json.loads(body)
    assert env["REQUEST_METHOD"] == want["method"]
    assert env["RAW_URI"] == want["uri"]
    assert env["PATH_INFO"] == want["path"]
    assert env["QUERY_STRING"] == want["query"]
    assert env["SERVER_PROTOCOL"] == want["version"]
    assert env["headers"] == want["headers"]  # exactly: a dropped name must not appear
    for key, env_key in (("content_type", "CONTENT_TYPE"), ("content_length", "CONTENT_LENGTH")):
        assert env.get(env_key) == want.get(key), env_key
    assert env["body"] == want["body"]
    assert env["body_length"] == len(want["body"].encode("latin-1"))
    assert headers["connection"] == ["close"]  # the sync worker closes after every response, as Gunicorn's does


@pytest.mark.parametrize("path", cases("invalid"))
def test_invalid_request_is_refused_and_closed(server, path):
    want = expectation(path)
    # raw() returns once the server has closed; half-closing lets requests that end early reach end of stream.
    raw = server.raw(load_request(path), shutdown=True)
    status, headers, body, extra = split_framed(raw)
    assert status.startswith("HTTP/1.1 %d " % want["status"]), raw[:300]
    assert want["error"] in body.decode("latin-1")
    assert headers["connection"] == ["close"]
    assert extra == b""  # one response, nothing after it: not even for bytes the client sent after the error


def test_refusals_are_not_logged_as_errors(server):
    # Last in the file, so it also covers the whole corpus above (pytest keeps file order): a refused request is
    # the client's fault, a debug line, never an error for the operator (STYLE: expected errors quietly).
    server.raw(b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", shutdown=True)
    server.wait_for_log("Invalid request: request line is not METHOD SP TARGET SP VERSION (400)")
    assert "[ERROR]" not in server.log(), server.log()
