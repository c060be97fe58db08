# PEP 3333, complete: environ, start_response, the response iterable and its close(), the write() callable,
# wsgi.file_wrapper, big bodies both ways, and X-Forwarded-Proto, against the real binary with real clients.
import hashlib
import http.client
import json
import os
import socket
import struct
import time

import sys

import pytest
import requests

from conftest import APPS, split_response

sys.path.insert(0, str(APPS))
import wsgi_cases  # noqa: E402  (the apps' own helpers, to compute expected bodies)

CRLF = b"\r\n"


# -- helpers -------------------------------------------------------------------------------------------------

def decode_chunked(body):
    """(payload, complete): complete is False when the terminating 0-size chunk never arrived."""
    out, pos = b"", 0
    while True:
        eol = body.find(CRLF, pos)
        if eol < 0:
            return out, False
        size = int(body[pos:eol].split(b";")[0], 16)
        if size == 0:
            return out, body[eol + 2:eol + 4] == CRLF
        chunk = body[eol + 2:eol + 2 + size]
        out += chunk
        if len(chunk) < size or body[eol + 2 + size:eol + 4 + size] != CRLF:
            return out, False
        pos = eol + 4 + size


def get_json(server, path, **kw):
    r = requests.get(server.url(path), timeout=10, **kw)
    assert r.status_code == 200, r.text
    return r.json()


def wait_for_file(path, text, timeout=5):
    """close() runs after the last byte is sent, so the client may finish first: poll for its side effect."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and text in path.read_text():
            return path.read_text()
        time.sleep(0.02)
    raise AssertionError("%r not in %s: %r" % (text, path, path.read_text() if path.exists() else None))


def rst_close(sock):
    """Closes with a TCP reset (SO_LINGER 0), as a client that gives up mid-response does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# -- 1. environ (PEP 3333 "environ Variables") ----------------------------------------------------------------

def test_environ_has_every_pep3333_key(gcorn):
    server = gcorn("wsgi_cases:validated_environ")
    req = (b"POST /some/path?x=1&y=%20 HTTP/1.1\r\nHost: example.test:8080\r\nContent-Type: text/plain\r\n"
           b"Content-Length: 5\r\nX-Multi: a\r\nX-Multi: b\r\nAccept: */*\r\n\r\nhello")
    status, headers, body = split_response(server.raw(req))
    assert status == "HTTP/1.1 200 OK", body
    env = json.loads(body)
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/some/path"
    assert env["QUERY_STRING"] == "x=1&y=%20"
    assert env["RAW_URI"] == "/some/path?x=1&y=%20"
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "5"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(server.port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert int(env["REMOTE_PORT"]) > 0
    assert env["HTTP_HOST"] == "example.test:8080"
    assert env["HTTP_X_MULTI"] == "a,b"  # repeated fields joined with ',' (RFC 9110 §5.3)
    assert env["HTTP_ACCEPT"] == "*/*"
    assert env["wsgi.version"] == [1, 0]
    assert env["types"]["wsgi.version"] == "tuple"
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.input_terminated"] is True
    assert env["wsgi.multithread"] is False
    assert env["wsgi.multiprocess"] is False  # one worker: as Gunicorn, True only with workers > 1
    assert env["wsgi.run_once"] is False
    assert env["SERVER_SOFTWARE"].startswith("gcorn/")
    assert env["body"] == "hello"
    # every CGI value is a native str (PEP 3333 "Unicode Issues")
    for key, kind in env["types"].items():
        if key.isupper():
            assert kind == "str", key


def test_environ_without_body_has_no_content_headers(gcorn):
    server = gcorn("wsgi_cases:validated_environ")
    env = get_json(server, "/")
    assert "CONTENT_LENGTH" not in env or env["CONTENT_LENGTH"] in ("", "0")
    assert env["QUERY_STRING"] == ""
    assert env["PATH_INFO"] == "/"
    assert env["body"] == ""


def read_response(sock):
    """One Content-Length-framed response from a kept-alive connection: (status line, body)."""
    data = b""
    while CRLF * 2 not in data:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before a response: %r" % data
        data += chunk
    head, _, body = data.partition(CRLF * 2)
    length = next(int(line.split(b":", 1)[1]) for line in head.split(CRLF) if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    assert len(body) == length, "more than one response"
    return head.split(CRLF)[0].decode(), body


MUTATING_ENVIRON_APP = """
from wsgi_cases import environ_app

def app(environ, start_response):
    out = environ_app(environ, start_response)
    # what an app may do to its environ must not reach the next request on the connection
    environ["PATH_INFO"] = "/changed"
    environ["HTTP_X_A"] = "changed"
    environ.pop("HTTP_HOST", None)
    environ["SCRIPT_NAME"] = "/changed"
    environ["added.by.app"] = True
    return out
"""


@pytest.mark.parametrize("worker_class", ["async", "gthread"])
def test_each_keepalive_request_gets_its_own_environ(gcorn, worker_class):
    # A connection's environs share what its requests have in common: every request on one kept-alive connection
    # must still see exactly the environ a fresh connection sends it gets, whatever changed since the request
    # before (target, one header's value, the method, the protocol, a trusted proxy's SCRIPT_NAME and scheme,
    # repeated fields) and whatever the app did to the last one.
    server = gcorn(None, "-k", worker_class, "--forwarder-headers", "SCRIPT_NAME", source=MUTATING_ENVIRON_APP)
    requests_sent = [
        b"GET /a?x=1 HTTP/1.1\r\nHost: h1\r\nX-A: 1\r\n\r\n",
        b"GET /a?x=1 HTTP/1.1\r\nHost: h1\r\nX-A: 1\r\n\r\n",
        b"GET /a?x=1 HTTP/1.1\r\nHost: h1\r\nX-A: 2\r\n\r\n",
        b"GET /b%20c HTTP/1.1\r\nHost: h1\r\nX-A: 2\r\n\r\n",
        b"POST /b%20c HTTP/1.1\r\nHost: h1\r\nX-A: 2\r\nContent-Length: 3\r\n\r\nxyz",
        b"GET /b%20c HTTP/1.0\r\nHost: h1\r\nX-A: 2\r\nConnection: keep-alive\r\n\r\n",
        b"GET /b%20c HTTP/1.1\r\nHost: h1\r\nX-A: 2\r\nConnection: keep-alive\r\n\r\n",
        b"GET /app/x HTTP/1.1\r\nHost: h1\r\nSCRIPT_NAME: /app\r\n\r\n",
        b"GET /app/x HTTP/1.1\r\nHost: h1\r\nSCRIPT_NAME: /app\r\n\r\n",
        b"GET /other HTTP/1.1\r\nHost: h1\r\nSCRIPT_NAME: /app\r\n\r\n",  # not under SCRIPT_NAME: 404
        b"GET /app/x HTTP/1.1\r\nHost: h1\r\nSCRIPT_NAME: /app\r\nX-Forwarded-Proto: https\r\n\r\n",
        b"GET /app/x HTTP/1.1\r\nHost: h1\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: h1\r\nX-M: a\r\nX-M: b\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: h1\r\nX-M: a\r\nX-M: b\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: h2\r\nX-M: a\r\nX-M: b\r\n\r\n",
        b"GET /a?x=1 HTTP/1.1\r\nHost: h1\r\nX-A: 1\r\n\r\n",
    ]

    def comparable(status, body):
        if not status.endswith(" 200 OK"):
            return status, body
        env = json.loads(body)
        for per_connection in ("REMOTE_PORT", "pid"):
            env.pop(per_connection)
        return status, env

    with server.connect(10) as kept:
        for i, req in enumerate(requests_sent):
            kept.sendall(req)
            got = comparable(*read_response(kept))
            with server.connect(10) as fresh:
                fresh.sendall(req)
                expected = comparable(*read_response(fresh))
            assert got == expected, "request %d: %r" % (i, req)
            assert expected[0].endswith(" 404 Not Found" if b"/other" in req else " 200 OK")


@pytest.mark.parametrize("worker_class", ["async", "gthread", "sync"])
def test_header_fields_do_not_outlive_their_request(gcorn, worker_class):
    # A request's field list is kept for the next head its thread parses, strings and all (http::recycle): a next
    # request with fewer, shorter or other fields must see exactly its own, on the same connection or another.
    server = gcorn("wsgi_cases:environ_app", "-k", worker_class)
    long = "v" * 300
    sent = [
        [("Host", "h1"), ("X-One", long), ("X-Two", "short"), ("Cookie", "c" * 40), ("X-Three", long + "3")],
        [("Host", "h2")],
        [("Host", "h3"), ("X-Two", "a much longer value than the first time, past any inline buffer")],
        [("Host", "h4"), ("X-Four", "4"), ("X-One", "1"), ("X-Five", "5"), ("X-Six", "6"), ("X-Seven", "7"),
         ("X-Eight", "8"), ("X-Nine", "9"), ("X-Ten", "10"), ("X-Eleven", "11")],
        [("Host", "h5"), ("X-One", "")],
        [("Host", "h6"), ("X-Huge", "h" * 6000)],  # more than a pooled list may keep
        [("Host", "h7"), ("X-Two", "2")],
    ]
    keep_alive = worker_class != "sync"
    conn = server.connect(10) if keep_alive else None
    for i, fields in enumerate(sent * 2):
        req = "GET /%d HTTP/1.1\r\n%s\r\n" % (i, "".join("%s: %s\r\n" % f for f in fields))
        if keep_alive:
            conn.sendall(req.encode())
            status, body = read_response(conn)
        else:
            with server.connect(10) as once:
                once.sendall(req.encode())
                status, body = read_response(once)
        assert status.endswith(" 200 OK"), (i, status, server.log())
        env = json.loads(body)
        got = {k: v for k, v in env.items() if k.startswith("HTTP_")}
        assert got == {"HTTP_" + n.upper().replace("-", "_"): v for n, v in fields}, "request %d" % i
    if conn:
        conn.close()


KEEPING_ENVIRON_APP = """
import json
kept = []

def app(environ, start_response):
    if environ["PATH_INFO"] == "/keep":
        kept.append((environ, environ["QUERY_STRING"], environ.get("HTTP_X_N"), environ["wsgi.input"]))
    body = environ["wsgi.input"].read()
    # every environ an earlier request's app kept must still say what that request sent
    stale = [q for env, q, n, inp in kept
             if env["QUERY_STRING"] != q or env.get("HTTP_X_N") != n or env["wsgi.input"] is not inp]
    out = json.dumps({"stale": stale, "body": body.decode(), "q": environ["QUERY_STRING"],
                      "n": environ.get("HTTP_X_N"), "kept": len(kept)}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
    return [out]
"""


@pytest.mark.parametrize("worker_class", ["async", "gthread"])
def test_an_environ_the_app_keeps_is_never_reused(gcorn, worker_class):
    # A request whose app left its environ as it got it, and kept no reference to it, lends the same dict to the
    # next request on the connection; one the app keeps must never change under it, whatever comes next.
    server = gcorn(None, "-k", worker_class, source=KEEPING_ENVIRON_APP)
    sent = [("GET", "/plain", "1", "a", b""), ("GET", "/plain", "2", "a", b""), ("GET", "/keep", "3", "b", b""),
            ("GET", "/plain", "4", "b", b""), ("POST", "/plain", "5", "b", b"body5"), ("GET", "/keep", "6", "c", b""),
            ("POST", "/keep", "7", "c", b"body7"), ("GET", "/plain", "8", "c", b""), ("GET", "/plain", "9", "d", b"")]
    with server.connect(10) as conn:
        for method, path, q, n, body in sent:
            conn.sendall(b"%s %s?%s HTTP/1.1\r\nHost: x\r\nX-N: %s\r\nContent-Length: %d\r\n\r\n%s"
                         % (method.encode(), path.encode(), q.encode(), n.encode(), len(body), body))
            status, out = read_response(conn)
            assert status.endswith(" 200 OK"), (q, status, server.log())
            got = json.loads(out)
            assert got["stale"] == [], (q, got)
            assert (got["q"], got["n"], got["body"]) == (q, n, body.decode()), got
    assert got["kept"] == 3


READER_REF_APP = """
import gc, json, weakref
readers = []

def app(environ, start_response):
    if environ["PATH_INFO"] == "/post":
        environ["wsgi.input"].read()
        readers.append(weakref.ref(environ["wsgi.input"]))
        out = b"read"
    else:
        gc.collect()
        out = json.dumps([r() is not None for r in readers]).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))])
    return [out]
"""


@pytest.mark.parametrize("worker_class", ["async", "gthread"])
def test_an_idle_connection_holds_no_body_reader(gcorn, worker_class):
    # A request body's reader has a 64 KiB buffer: once the response is sent, a kept-alive connection waiting for its
    # next request must not keep it (10,000 idle connections after a POST would hold 640 MiB).
    server = gcorn(None, "-k", worker_class, source=READER_REF_APP)
    with server.connect(10) as idle:
        idle.sendall(b"POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        assert read_response(idle)[1] == b"read"
        with server.connect(10) as other:
            other.sendall(b"GET /check HTTP/1.1\r\nHost: x\r\n\r\n")
            assert json.loads(read_response(other)[1]) == [False]


SIZED_CHUNKS_APP = """
def app(environ, start_response):
    if not environ["QUERY_STRING"]:  # the fixture's readiness probe
        start_response("204 No Content", [])
        return []
    sizes = [int(n) for n in environ["QUERY_STRING"].split(",")]
    chunks = [bytes([65 + i % 26]) * n for i, n in enumerate(sizes)]
    headers = [("Content-Type", "text/x-sized"), ("X-Sizes", environ["QUERY_STRING"])]
    if environ["PATH_INFO"] == "/length":
        headers.append(("Content-Length", str(sum(sizes))))
    start_response("200 OK", headers)
    return chunks
"""


@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_small_bodies_leave_with_the_head(gcorn, tmp_path, version):
    # A first body chunk that fits behind the head in the head's buffer is sent with it in one send(2); bigger ones
    # and the chunks after it go as they are. Every split must reach the client whole and in order, and the
    # response fields the access log reads back from the head's buffer must not include the body.
    log = tmp_path / "access.log"
    server = gcorn(None, "-k", "async", "--access-logfile", str(log),
                   "--access-logformat", "%(s)s %(B)s %({content-type}o)s %({x-sizes}o)s", source=SIZED_CHUNKS_APP)
    cases = ["1", "0,5", "13", "200", "250,1", "300", "1000", "5,5,5", "64,100000,3"]
    with server.connect(10) as conn:
        for sizes in cases:
            for path in ("/length", "/chunked"):
                keep = version == "1.1" and path == "/length"
                req = "GET %s?%s HTTP/%s\r\nHost: x\r\n%s\r\n" % (path, sizes, version, "" if keep else "Connection: close\r\n")
                sock = conn if keep else server.connect(10)
                sock.sendall(req.encode())
                data = b""
                if keep:
                    status, body = read_response(sock)
                else:
                    while chunk := sock.recv(65536):
                        data += chunk
                    sock.close()
                    head, _, body = data.partition(CRLF * 2)
                    status = head.split(CRLF)[0].decode()
                    if b"transfer-encoding: chunked" in head.lower():
                        body, complete = decode_chunked(body)
                        assert complete, (sizes, path)
                expected = b"".join(bytes([65 + i % 26]) * int(n) for i, n in enumerate(sizes.split(",")))
                assert status.endswith(" 200 OK"), (sizes, path, status)
                assert body == expected, (sizes, path, version, len(body), len(expected))
    deadline = time.monotonic() + 10
    want = 2 * len(cases)
    sized = lambda: [l for l in log.read_text().splitlines() if not l.startswith("204 ")] if log.exists() else []
    while time.monotonic() < deadline and len(sized()) < want:
        time.sleep(0.05)
    lines = sized()
    assert len(lines) == want, lines
    for line, (sizes, _) in zip(lines, [(c, p) for c in cases for p in (1, 2)]):
        total = sum(int(n) for n in sizes.split(","))
        assert line == "200 %d text/x-sized %s" % (total, sizes), line


def test_chunked_request_has_no_content_length(gcorn):
    server = gcorn("wsgi_cases:validated_environ")
    req = (b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    status, _, body = split_response(server.raw(req))
    assert status.endswith("200 OK")
    env = json.loads(body)
    assert "CONTENT_LENGTH" not in env
    assert env["HTTP_TRANSFER_ENCODING"] == "chunked"
    assert env["body"] == "abcde"
    assert env["wsgi.input_terminated"] is True


def test_path_info_is_percent_decoded_as_latin1(gcorn):
    server = gcorn("wsgi_cases:validated_environ")
    env = get_json(server, "/caf%C3%A9/a%20b/%2Fslash")
    # PEP 3333 "Unicode Issues": the decoded bytes as a latin-1 str, not UTF-8-decoded
    assert env["PATH_INFO"] == "/caf\u00c3\u00a9/a b//slash"
    assert env["RAW_URI"] == "/caf%C3%A9/a%20b/%2Fslash"
    # what frameworks do to recover the UTF-8 path
    assert env["PATH_INFO"].encode("latin-1").decode("utf-8") == "/caf\u00e9/a b//slash"


def test_raw_non_ascii_request_target_is_latin1(gcorn):
    server = gcorn("wsgi_cases:validated_environ")
    status, _, body = split_response(server.raw(b"GET /\xc3\xa9t\xc3\xa9 HTTP/1.0\r\n\r\n"))
    if status.endswith("200 OK"):
        assert json.loads(body)["PATH_INFO"] == "/\u00c3\u00a9t\u00c3\u00a9"
    else:
        assert status.split()[1] == "400"  # refusing a non-ASCII target is also fine (RFC 9112 §3.2)


def test_absolute_form_target(gcorn):
    server = gcorn("wsgi_cases:validated_environ")
    status, _, body = split_response(server.raw(b"GET http://example.test/abs/path?q=1 HTTP/1.1\r\nHost: example.test\r\n\r\n"))
    assert status.endswith("200 OK")
    env = json.loads(body)
    assert env["PATH_INFO"] == "/abs/path"
    assert env["QUERY_STRING"] == "q=1"


def test_asterisk_form_has_empty_path_info(gcorn):
    server = gcorn("wsgi_cases:validated_environ", "--script-name", "/mount")
    status, _, body = split_response(server.raw(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert status.endswith("200 OK")  # about the whole server: not refused for being outside SCRIPT_NAME
    env = json.loads(body)
    assert (env["SCRIPT_NAME"], env["PATH_INFO"], env["RAW_URI"]) == ("/mount", "", "*")


@pytest.mark.parametrize("how", ["cli", "env"])
def test_script_name(gcorn, how):
    if how == "cli":
        server = gcorn("wsgi_cases:validated_environ", "--script-name", "/mount")
    else:
        server = gcorn("wsgi_cases:validated_environ", env={"SCRIPT_NAME": "/mount"})
    env = get_json(server, "/mount/a/b?z=1")
    assert env["SCRIPT_NAME"] == "/mount"
    assert env["PATH_INFO"] == "/a/b"
    assert env["QUERY_STRING"] == "z=1"
    env = get_json(server, "/mount")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/mount", "")


def test_script_name_matches_whole_segments_only(gcorn):
    server = gcorn("wsgi_cases:validated_environ", "--script-name", "/mount/")
    env = get_json(server, "/mount/x")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/mount", "/x")  # PEP 3333: no trailing slash
    # /mountain is not under /mount: SCRIPT_NAME + PATH_INFO could not rebuild the URL, so no app call
    r = requests.get(server.url("/mountain"), timeout=10)
    assert r.status_code == 404
    r = requests.get(server.url("/other"), timeout=10)
    assert r.status_code == 404


def test_environ_on_unix_socket(gcorn, tmp_path):
    path = str(tmp_path / "gcorn.sock")
    server = gcorn("wsgi_cases:validated_environ", "-b", "unix:" + path, bind=False, ready=False)

    def get(host_header):
        deadline = time.time() + 20
        while True:
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(10)
                    s.connect(path)
                    s.sendall(b"GET /u HTTP/1.1\r\n" + host_header + b"\r\n")
                    data = b""
                    while chunk := s.recv(65536):
                        data += chunk
                    return json.loads(split_response(data)[2])
            except (FileNotFoundError, ConnectionRefusedError, IndexError, AssertionError):
                if time.time() > deadline:
                    raise AssertionError(server.log())
                time.sleep(0.05)

    env = get(b"Host: public.example:8443\r\n")
    # no listening port: SERVER_NAME/PORT come from Host, so URL reconstruction gives the public address
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("public.example", "8443")
    assert env["REMOTE_ADDR"] == "" and "REMOTE_PORT" not in env
    env = get(b"Host: public.example\r\nX-Forwarded-Proto: https\r\n")
    assert (env["SERVER_NAME"], env["SERVER_PORT"], env["wsgi.url_scheme"]) == ("public.example", "443", "https")
    env = get(b"Host: [::1]\r\n")
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("[::1]", "80")


def test_wsgi_errors_goes_to_error_log(gcorn):
    server = gcorn("wsgi_cases:validated_environ")
    get_json(server, "/errors")
    server.wait_for_log("wsgi.errors line from the app")
    server.wait_for_log("second line")


# -- 2. a validator-wrapped app (wsgiref.validate) ------------------------------------------------------------

def test_validated_get(gcorn):
    server = gcorn("wsgi_cases:routes")
    r = requests.get(server.url("/"), timeout=10)
    assert r.status_code == 200
    assert r.text == "hello world"
    assert "AssertionError" not in server.log()


def test_validated_post_with_body(gcorn):
    server = gcorn("wsgi_cases:routes")
    data = b"first line\n" + os.urandom(300_000)
    r = requests.post(server.url("/post"), data=data, timeout=10)
    assert r.status_code == 200, server.log()
    got = r.json()
    assert got == {"length": len(data), "sha256": hashlib.sha256(data).hexdigest(), "content_length": str(len(data))}


def test_validated_chunked_upload(gcorn):
    server = gcorn("wsgi_cases:routes")
    parts = [b"line one\n", os.urandom(70_000), b"", os.urandom(5)]
    parts = [p for p in parts if p]
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", "/post", body=iter(parts), encode_chunked=True,
                 headers={"Transfer-Encoding": "chunked", "Content-Type": "application/octet-stream"})
    r = conn.getresponse()
    assert r.status == 200, server.log()
    got = json.loads(r.read())
    data = b"".join(parts)
    assert got == {"length": len(data), "sha256": hashlib.sha256(data).hexdigest(), "content_length": None}
    conn.close()


def test_streaming_response_is_chunked_and_not_buffered(gcorn):
    server = gcorn("wsgi_cases:routes")
    with server.connect() as s:
        start = time.monotonic()
        s.sendall(b"GET /stream?1 HTTP/1.1\r\nHost: x\r\n\r\n")
        first = s.recv(65536)
        first_at = time.monotonic() - start
        data = first
        while b"0\r\n\r\n" not in data:
            more = s.recv(65536)
            if not more:
                break
            data += more
        total = time.monotonic() - start
    status, headers, body = split_response(data)
    assert status == "HTTP/1.1 200 OK"
    assert headers["transfer-encoding"] == ["chunked"]
    assert "content-length" not in headers
    assert b"chunk-0;" in first, "the first chunk must leave before the generator sleeps"
    assert first_at < 0.8, first_at
    assert total >= 1.9, total
    payload, complete = decode_chunked(body)
    assert complete
    assert payload == b"chunk-0;chunk-1;chunk-2;"
    assert body.startswith(b"8\r\nchunk-0;\r\n")


def test_streaming_response_on_http10_is_close_delimited(gcorn):
    server = gcorn("wsgi_cases:routes")
    status, headers, body = split_response(server.raw(b"GET /stream?0 HTTP/1.0\r\n\r\n"))
    assert status == "HTTP/1.0 200 OK"
    assert "transfer-encoding" not in headers  # chunked does not exist in HTTP/1.0
    assert body == b"chunk-0;chunk-1;chunk-2;"


def test_write_callable(gcorn):
    server = gcorn("wsgi_cases:routes")
    r = requests.get(server.url("/write"), timeout=10)
    assert r.status_code == 200
    assert r.content == b"written then returned"
    status, headers, body = split_response(server.raw(b"GET /write HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert headers["transfer-encoding"] == ["chunked"]
    assert decode_chunked(body) == (b"written then returned", True)
    assert "AssertionError" not in server.log()


def test_list_body_gets_content_length(gcorn):
    server = gcorn("wsgi_cases:tracked")
    r = requests.get(server.url("/pid"), timeout=10)
    assert r.headers["Content-Length"] == str(len(r.content))  # a list body: the server knows its length
    assert "Transfer-Encoding" not in r.headers


def test_head_request_has_no_body(gcorn):
    server = gcorn("wsgi_cases:tracked")
    pid = requests.get(server.url("/pid"), timeout=10).text
    status, headers, body = split_response(server.raw(b"HEAD /pid HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-length"] == [str(len(pid))]  # RFC 9110 §9.3.2: the GET's length
    assert body == b""
    # a streamed body: no length, no chunked framing, nothing after the head
    status, headers, body = split_response(server.raw(b"HEAD /ok HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert status == "HTTP/1.1 200 OK"
    assert "transfer-encoding" not in headers
    assert body == b""


# -- 3. start_response ---------------------------------------------------------------------------------------

def test_exc_info_before_head_sent_replaces_response(gcorn):
    server = gcorn("wsgi_cases:exc_info_app")
    r = requests.get(server.url("/before"), timeout=10)
    assert r.status_code == 503
    assert r.content == b"replacement body"
    assert "X-First" not in r.headers


def test_exc_info_after_head_sent_reraises_and_closes(gcorn, tmp_path):
    server = gcorn("wsgi_cases:exc_info_app")
    status, headers, body = split_response(server.raw(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert status == "HTTP/1.1 200 OK"
    payload, complete = decode_chunked(body)
    assert payload == b"partial;"
    assert not complete, "the body must not look complete after the app failed"
    server.wait_for_log("KeyError: 'too late'")
    assert not (tmp_path / "closed.log").exists()  # start_response raised: the app never went on
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(server.url("/after"), timeout=10).content


def test_a_refused_replacement_head_leaves_the_response_unstarted(gcorn):
    # The fields are framed as start_response checks them: a refused one must not leave the earlier head (or half of
    # the new one) to be sent; the app did not call start_response again, so it gets the server's 500.
    server = gcorn("wsgi_cases:exc_info_app")
    raw = server.raw(b"GET /refused-replacement HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = split_response(raw)
    assert status == "HTTP/1.1 500 Internal Server Error"
    assert "x-first" not in headers and "injected" not in headers and "x-bad" not in headers
    assert body == b"Internal Server Error"
    server.wait_for_log("start_response was not called")


def test_second_start_response_without_exc_info_is_500(gcorn):
    server = gcorn("wsgi_cases:exc_info_app")
    r = requests.get(server.url("/twice"), timeout=10)
    assert r.status_code == 500
    assert b"should not be sent" not in r.content
    server.wait_for_log("start_response called a second time")


@pytest.mark.parametrize("path, error", [
    ("/not-exc-info", "TypeError: exc_info must come from sys.exc_info()"),
    ("/write-str", "TypeError: write() takes bytes, not str"),
])
def test_start_response_and_write_misuse_is_500(gcorn, path, error):
    server = gcorn("wsgi_cases:exc_info_app")
    r = requests.get(server.url(path), timeout=10)
    assert r.status_code == 500
    assert r.text == "Internal Server Error"
    server.wait_for_log(error)


@pytest.mark.parametrize("case", ["crlf-value", "lf-value", "cr-name", "colon-name", "space-name", "empty-name",
                                  "non-latin1-value", "non-latin1-name", "bytes-name", "bytes-value", "int-value",
                                  "nul-value", "not-a-tuple", "status-crlf", "status-bytes", "status-short",
                                  "status-word"])
def test_invalid_headers_are_500_never_split(gcorn, case):
    server = gcorn("wsgi_cases:bad_headers")
    raw = server.raw(b"GET /" + case.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = split_response(raw)
    assert status == "HTTP/1.1 500 Internal Server Error"
    assert "injected" not in headers
    assert "x-bad" not in headers
    assert raw.count(b"HTTP/1.") == 1
    assert body == b"Internal Server Error"
    server.wait_for_log("Traceback (most recent call last)")


def test_latin1_header_value_is_sent_as_latin1(gcorn):
    server = gcorn("wsgi_cases:bad_headers")
    status, headers, body = split_response(server.raw(b"GET /good-latin1 HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert status.endswith("200 OK")
    assert headers["x-latin1"] == ["caf\u00e9"]  # split_response decodes latin-1: the byte was 0xE9
    assert body == b"ok"


# -- 4. app errors and close() --------------------------------------------------------------------------------

def test_app_exception_is_500_and_worker_survives(gcorn):
    server = gcorn("wsgi_cases:tracked")
    before = requests.get(server.url("/pid"), timeout=10).text
    r = requests.get(server.url("/raise"), timeout=10)
    assert r.status_code == 500
    assert r.text == "Internal Server Error"
    server.wait_for_log("ValueError: the app failed on purpose")
    assert "Traceback (most recent call last)" in server.log()
    r = requests.get(server.url("/raise-after-start"), timeout=10)
    assert r.status_code == 500
    assert r.text == "Internal Server Error"
    after = requests.get(server.url("/pid"), timeout=10).text
    assert before == after  # one worker, never restarted


@pytest.mark.parametrize("path, error", [
    ("/list-no-start", "AssertionError: start_response was not called"),
    ("/empty-no-start", "AssertionError: start_response was not called"),
    ("/str-body", "TypeError: the response must yield bytes, not str"),
])
def test_protocol_violations_are_500(gcorn, path, error):
    server = gcorn("wsgi_cases:tracked")
    r = requests.get(server.url(path), timeout=10)
    assert r.status_code == 500
    assert r.text == "Internal Server Error"
    assert r.headers["Content-Length"] == "21"  # not the length of the app's own list body
    server.wait_for_log("Error handling request %s\n%s" % (path, error))
    assert requests.get(server.url("/pid"), timeout=10).status_code == 200


def test_close_called_on_success(gcorn, tmp_path):
    server = gcorn("wsgi_cases:tracked")
    r = requests.get(server.url("/ok"), timeout=10)
    assert r.content == b"one two"
    assert wait_for_file(tmp_path / "closed.log", "closed ok after 2").count("closed ok") == 1


def test_exception_mid_stream_truncates_and_closes(gcorn, tmp_path):
    server = gcorn("wsgi_cases:tracked")
    status, headers, body = split_response(server.raw(b"GET /fail-mid HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert status == "HTTP/1.1 200 OK"
    assert headers["transfer-encoding"] == ["chunked"]
    payload, complete = decode_chunked(body)
    assert payload == b"first "
    assert not complete
    assert wait_for_file(tmp_path / "closed.log", "closed fail-mid after 1").count("closed fail-mid") == 1
    server.wait_for_log("RuntimeError: boom in the middle of fail-mid")
    # http.client notices the truncation too
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/fail-mid")
    with pytest.raises(http.client.IncompleteRead):
        conn.getresponse().read()
    conn.close()


def test_exception_mid_body_with_content_length(gcorn, tmp_path):
    server = gcorn("wsgi_cases:tracked")
    status, headers, body = split_response(server.raw(b"GET /fail-mid-length HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert headers["content-length"] == ["100"]
    assert body == b"first "  # short of Content-Length, then closed
    wait_for_file(tmp_path / "closed.log", "closed fail-mid-length after 1")


def test_close_called_when_client_disconnects(gcorn, tmp_path):
    server = gcorn("wsgi_cases:tracked", "--timeout", "5")
    s = server.connect()
    s.sendall(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    while len(got) < 200_000:
        got += s.recv(65536)
    rst_close(s)
    wait_for_file(tmp_path / "closed.log", "closed forever after", timeout=10)
    # the same worker goes on serving
    assert requests.get(server.url("/ok"), timeout=10).content == b"one two"
    assert "Error handling request" not in server.log()  # a gone client is not an app error


def test_close_called_for_head_and_each_request(gcorn, tmp_path):
    server = gcorn("wsgi_cases:tracked")
    for _ in range(3):
        requests.get(server.url("/ok"), timeout=10)
    requests.head(server.url("/ok"), timeout=10)
    deadline = time.time() + 5
    while time.time() < deadline and (tmp_path / "closed.log").read_text().count("closed ok") < 4:
        time.sleep(0.02)
    assert (tmp_path / "closed.log").read_text().count("closed ok") == 4


# -- 5. wsgi.file_wrapper -------------------------------------------------------------------------------------

@pytest.fixture
def big_file(tmp_path):
    path = tmp_path / "five-mb.bin"
    path.write_bytes(os.urandom(5 * 1024 * 1024 + 123))
    return path


def fetch(server, path, params):
    r = requests.get(server.url(path), params=params, timeout=30)
    assert r.status_code == 200, server.log()
    return r


def test_file_wrapper_sends_file_with_sendfile(gcorn, big_file, tmp_path):
    server = gcorn("wsgi_cases:files")
    r = fetch(server, "/", {"path": str(big_file)})
    data = big_file.read_bytes()
    assert hashlib.sha256(r.content).hexdigest() == hashlib.sha256(data).hexdigest()
    assert r.headers["Content-Length"] == str(len(data))
    # sendfile(2) never calls the file object's read(); close() is still called
    assert "file closed after 0 reads" in wait_for_file(tmp_path / "closed.log", "file closed")


def test_file_wrapper_from_offset(gcorn, big_file, tmp_path):
    server = gcorn("wsgi_cases:files")
    offset = 1_000_003
    r = fetch(server, "/", {"path": str(big_file), "offset": offset})
    data = big_file.read_bytes()[offset:]
    assert len(r.content) == len(data)
    assert hashlib.sha256(r.content).hexdigest() == hashlib.sha256(data).hexdigest()
    assert r.headers["Content-Length"] == str(len(data))
    wait_for_file(tmp_path / "closed.log", "file closed after 0 reads")


def test_file_wrapper_falls_back_to_iteration_for_bytesio(gcorn, big_file):
    server = gcorn("wsgi_cases:files")
    r = fetch(server, "/", {"path": str(big_file), "bytesio": "", "offset": 10})
    assert hashlib.sha256(r.content).hexdigest() == hashlib.sha256(big_file.read_bytes()[10:]).hexdigest()


def test_file_wrapper_on_http10(gcorn, big_file):
    server = gcorn("wsgi_cases:files")
    raw = server.raw(b"GET /?path=" + str(big_file).encode() + b" HTTP/1.0\r\n\r\n", timeout=30)
    status, headers, body = split_response(raw)
    assert status == "HTTP/1.0 200 OK"
    assert body == big_file.read_bytes()


def test_file_wrapper_head_sends_no_body(gcorn, big_file, tmp_path):
    server = gcorn("wsgi_cases:files")
    raw = server.raw(b"HEAD /?path=" + str(big_file).encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = split_response(raw)
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-length"] == [str(big_file.stat().st_size)]
    assert body == b""
    wait_for_file(tmp_path / "closed.log", "file closed")


# -- 6. big bodies -------------------------------------------------------------------------------------------

FIFTY_MB = 50 * 1024 * 1024


def test_50mb_upload_with_content_length(gcorn):
    server = gcorn("wsgi_cases:upload_digest")
    data = os.urandom(FIFTY_MB)
    r = requests.post(server.url("/"), data=data, timeout=120)
    assert r.status_code == 200, server.log()
    assert r.json() == {"length": FIFTY_MB, "sha256": hashlib.sha256(data).hexdigest()}


def test_50mb_chunked_upload(gcorn):
    server = gcorn("wsgi_cases:upload_digest")
    block = os.urandom(1024 * 1024)
    digest = hashlib.sha256()

    def body():
        for i in range(50):
            piece = bytes([i]) + block[1:]
            digest.update(piece)
            yield piece

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    conn.request("POST", "/", body=body(), encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
    r = conn.getresponse()
    assert r.status == 200, server.log()
    assert json.loads(r.read()) == {"length": FIFTY_MB, "sha256": digest.hexdigest()}
    conn.close()


@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_100mb_streamed_response(gcorn, version):
    server = gcorn("wsgi_cases:big_stream")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    if version == "1.0":
        conn._http_vsn, conn._http_vsn_str = 10, "HTTP/1.0"
    conn.request("GET", "/?100")
    r = conn.getresponse()
    assert r.status == 200
    assert r.getheader("Transfer-Encoding") == ("chunked" if version == "1.1" else None)
    digest, total = hashlib.sha256(), 0
    while True:
        chunk = r.read(1 << 20)
        if not chunk:
            break
        digest.update(chunk)
        total += len(chunk)
    conn.close()
    assert total == 100 * 1024 * 1024
    expected = hashlib.sha256()
    for i in range(100):
        expected.update(wsgi_cases.big_chunk(i))
    assert digest.hexdigest() == expected.hexdigest()


# -- 7. X-Forwarded-Proto ------------------------------------------------------------------------------------

def test_forwarded_proto_from_trusted_peer(gcorn):
    server = gcorn("wsgi_cases:validated_environ")
    assert get_json(server, "/", headers={"X-Forwarded-Proto": "https"})["wsgi.url_scheme"] == "https"
    assert get_json(server, "/", headers={"X-Forwarded-Proto": "http"})["wsgi.url_scheme"] == "http"
    assert get_json(server, "/")["wsgi.url_scheme"] == "http"


def test_forwarded_proto_from_untrusted_peer_is_ignored(gcorn):
    server = gcorn("wsgi_cases:validated_environ", "--forwarded-allow-ips", "10.1.1.1")
    env = get_json(server, "/", headers={"X-Forwarded-Proto": "https"})
    assert env["wsgi.url_scheme"] == "http"
    assert env["HTTP_X_FORWARDED_PROTO"] == "https"  # still visible to the app as a plain header


def test_forwarded_allow_ips_star(gcorn):
    server = gcorn("wsgi_cases:validated_environ", "--forwarded-allow-ips", "*")
    assert get_json(server, "/", headers={"X-Forwarded-Proto": "https"})["wsgi.url_scheme"] == "https"


# -- wsgi.input details ---------------------------------------------------------------------------------------

def test_wsgi_input_methods(gcorn):
    server = gcorn("wsgi_cases:input_methods")
    data = b"first line\nsecond line\nthird\nfourth\nfifth"
    for chunked in (False, True):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("POST", "/", body=iter([data[:7], data[7:]]) if chunked else data, encode_chunked=chunked)
        r = conn.getresponse()
        assert r.status == 200, server.log()
        assert json.loads(r.read()) == {
            "readline": "first line\n", "readline_limited": "sec", "read_n": "ond ",
            "readlines_hint": ["line\n"], "iterated": ["third\n", "fourth\n", "fifth"],
            "read_at_end": "", "read_n_at_end": ""}
        conn.close()


def test_wsgi_input_without_a_body_is_at_its_end(gcorn):
    # A GET, a POST with Content-Length: 0 and a GET: every read method finds the end, on every request of a
    # kept-alive connection (the object is shared by such requests: reading it cannot leave anything behind).
    server = gcorn("wsgi_cases:input_methods")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    for method, body in (("GET", None), ("POST", b""), ("GET", None)):
        conn.request(method, "/", body=body)
        r = conn.getresponse()
        assert r.status == 200, server.log()
        assert json.loads(r.read()) == {
            "readline": "", "readline_limited": "", "read_n": "", "readlines_hint": [], "iterated": [],
            "read_at_end": "", "read_n_at_end": ""}
    conn.close()


def test_wsgi_input_is_an_io_stream_with_or_without_a_body(gcorn):
    # Code that wants a file object wraps wsgi.input in io.TextIOWrapper, whose close() closes the stream too: with a
    # body that is the request's own reader; without one, a stream shared by requests, which must stay usable.
    server = gcorn("wsgi_cases:input_as_stream")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    for body in (None, "héllo\nwörld".encode(), None, b""):
        conn.request("POST" if body is not None else "GET", "/", body=body)
        r = conn.getresponse()
        assert r.status == 200, server.log()
        assert json.loads(r.read()) == {
            "is_iobase": True, "readable": True, "seekable": False, "readinto": None if body else 0,
            "text": (body or b"").decode()}, server.log()
    conn.close()
    assert "Traceback" not in server.log()


def test_wsgi_input_read_without_size(gcorn):
    server = gcorn("wsgi_cases:read_all")
    data = os.urandom(3 * 1024 * 1024 + 17)
    r = requests.post(server.url("/"), data=data, timeout=30)
    assert r.json() == {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    r = requests.post(server.url("/"), data=iter([data[:100000], data[100000:]]), timeout=30)  # chunked
    assert r.json() == {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_expect_100_continue_with_curl(gcorn, tmp_path):
    import subprocess
    server = gcorn("wsgi_cases:upload_digest")
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(2 * 1024 * 1024))
    # --expect100-timeout 60: had the server not answered 100 Continue, curl would wait a minute (and then send
    # anyway); the timeout below fails the test long before that.
    out = subprocess.run(["curl", "-sS", "-v", "--expect100-timeout", "60", "--data-binary", "@%s" % payload,
                          "-H", "Expect: 100-continue", server.url("/")], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "HTTP/1.1 100 Continue" in out.stderr
    assert json.loads(out.stdout)["sha256"] == hashlib.sha256(payload.read_bytes()).hexdigest()


def test_malformed_chunked_body_is_400_not_500(gcorn):
    server = gcorn("wsgi_cases:upload_digest")
    raw = server.raw(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n")
    status, _, _ = split_response(raw)
    assert status.split()[1] == "400", raw
    time.sleep(0.2)
    assert "Error handling request" not in server.log()  # the client's fault: no app traceback


def test_client_gone_during_upload_is_quiet(gcorn):
    server = gcorn("wsgi_cases:upload_digest")
    s = server.connect()
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 50000)
    time.sleep(0.3)
    rst_close(s)
    time.sleep(0.3)
    assert requests.get(server.url("/"), timeout=10).status_code == 200  # the worker goes on
    log = server.log()
    assert "Error handling request" not in log and "Internal Server Error" not in log


def test_callables_of_a_finished_request_raise(gcorn):
    server = gcorn("wsgi_cases:stale_callables")
    assert requests.post(server.url("/keep"), data=b"unread body", timeout=10).text == "kept"
    r = requests.get(server.url("/use"), timeout=10)
    assert r.status_code == 200
    lines = r.text.splitlines()
    assert len(lines) == 3
    for line in lines:
        assert "RuntimeError: this object belonged to a finished request" in line, r.text
