# HTTP/1.1 behaviour of the real binary seen from a raw socket (DESIGN §6): bodiless responses, 100-continue,
# the head deadline, close-delimited bodies, response splitting, short bodies and when a connection may be
# reused. Each runs on the sync worker (closes after every response) and the async one (keeps connections).
# How requests are parsed is the corpus's job (test_http_corpus.py).
import re
import socket
import time

import pytest

from conftest import split_framed
from test_http_corpus import start_module_server, stop_module_server

# Not wrapped in wsgiref's validator: several routes break PEP 3333 on purpose, to see what the server does.
APP = r'''
def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/hello":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return [b"hello"]
    if path == "/list":  # no Content-Length from the app: the server knows the total of a list
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"abc", b"de"]
    if path == "/gen":  # no length anywhere: chunked on 1.1, close-delimited on 1.0
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (chunk for chunk in (b"ab", b"cd"))
    if path.startswith("/status/"):
        start_response(path[8:] + " Whatever", [("Content-Length", "16")])
        return [b"must not be sent"]
    if path == "/read":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path == "/no-read":
        start_response("200 OK", [("Content-Length", "7")])
        return [b"ignored"]
    if path == "/crlf-header":
        start_response("200 OK", [("X-Evil", "a\r\nSet-Cookie: pwned=1")])
        return [b"split"]
    if path == "/crlf-status":
        start_response("200 OK\r\nSet-Cookie: pwned=1", [])
        return [b"split"]
    if path == "/bad-length":
        start_response("200 OK", [("Content-Length", "5, 5")])
        return [b"hello"]
    if path == "/short":
        start_response("200 OK", [("Content-Length", "10")])
        return (chunk for chunk in (b"abc",))
    start_response("404 Not Found", [("Content-Length", "0")])
    return []
'''


WORKERS = ["sync", "async"]


@pytest.fixture(scope="module", params=WORKERS)
def server(request, tmp_path_factory):
    server = start_module_server(tmp_path_factory.mktemp("rules"), "inline_app:app", "-k", request.param,
                                 source=APP)
    server.keeps_alive = request.param != "sync"  # Gunicorn's sync worker answers one request per connection
    yield server
    stop_module_server(server)


def get(path, method="GET", version="HTTP/1.1", extra=b"", keep=False):
    """A request; with Connection: close unless `keep`, so reading to the close does not wait out keep-alive."""
    close = b"" if keep else b"Connection: close\r\n"
    return b"%s %s %s\r\nHost: x\r\n%s%s\r\n" % (method.encode(), path.encode(), version.encode(), close, extra)


def head_and_rest(raw):
    head, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep, raw
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers, rest


def recv_until(sock, marker, limit=65536):
    data = b""
    while marker not in data and len(data) < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def recv_all(sock):
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def read_responses(sock, count):
    """Reads up to `count` Content-Length framed responses off a connection; fewer if the server closes it."""
    data, responses = b"", []
    while len(responses) < count:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            length = int(re.search(rb"\r\ncontent-length: *(\d+)", head, re.I).group(1))
            if len(rest) >= length:
                responses.append((head.split(b"\r\n")[0].decode(), head + b"\r\n", rest[:length]))
                data = rest[length:]
                continue
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return responses


# --- RFC 9110 §6.4.1 and §9.3.2: responses without a body

def test_head_keeps_content_length_but_sends_no_body(server):
    status, headers, rest = head_and_rest(server.raw(get("/hello", "HEAD")))
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-length"] == "5"  # what GET would have said (RFC 9110 §9.3.2)
    assert rest == b""


def test_head_of_a_list_announces_the_get_length(server):
    _, get_headers, get_body, _ = split_framed(server.raw(get("/list")))
    status, headers, rest = head_and_rest(server.raw(get("/list", "HEAD")))
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-length"] == get_headers["content-length"][0] == str(len(get_body)) == "5"
    assert rest == b""


def test_head_of_a_stream_is_not_chunked(server):
    # Nothing follows a HEAD response, so no framing is announced for the body it does not have.
    status, headers, rest = head_and_rest(server.raw(get("/gen", "HEAD")))
    assert status == "HTTP/1.1 200 OK"
    assert "transfer-encoding" not in headers
    assert rest == b""


@pytest.mark.parametrize("code", ["204", "304"])
def test_204_and_304_carry_no_body(server, code):
    status, headers, rest = head_and_rest(server.raw(get("/status/" + code)))
    assert status.startswith("HTTP/1.1 %s " % code)
    assert rest == b""
    # RFC 9110 §8.6 / RFC 9112 §6.1: neither framing header announces a body that is not there.
    assert "content-length" not in headers
    assert "transfer-encoding" not in headers


# --- RFC 9110 §10.1.1: Expect: 100-continue

def test_100_continue_is_sent_when_the_app_reads_the_body(server):
    with server.connect() as s:
        s.sendall(get("/read", "POST", extra=b"Expect: 100-continue\r\nContent-Length: 5\r\n"))
        interim = recv_until(s, b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(b"hello")
        raw = interim[len(b"HTTP/1.1 100 Continue\r\n\r\n"):] + recv_all(s)
    status, _, body, extra = split_framed(raw)
    assert status == "HTTP/1.1 200 OK"
    assert body == b"hello"
    assert extra == b""


def test_no_100_continue_when_the_app_does_not_read(server):
    # The client is still waiting to send its body: inviting it would only waste its bandwidth.
    with server.connect() as s:
        # No Connection: close: the server must close by itself rather than wait for a body it did not invite.
        s.sendall(get("/no-read", "POST", extra=b"Expect: 100-continue\r\nContent-Length: 5\r\n", keep=True))
        raw = recv_all(s)
    assert b"100 Continue" not in raw
    status, _, body, extra = split_framed(raw)
    assert status == "HTTP/1.1 200 OK"
    assert body == b"ignored"
    assert extra == b""


def test_no_100_continue_for_http10(server):
    # RFC 9110 §10.1.1: a server MUST NOT send a 100 response to an HTTP/1.0 client.
    raw = server.raw(get("/read", "POST", "HTTP/1.0", b"Expect: 100-continue\r\nContent-Length: 5\r\n") + b"hello")
    assert b"100 Continue" not in raw
    status, _, body, _ = split_framed(raw)
    assert status == "HTTP/1.0 200 OK"
    assert body == b"hello"


# --- HTTP/1.0 and length-less bodies

def test_http10_body_without_length_is_close_delimited(server):
    # RFC 9112 §6.3 (8): chunked does not exist in 1.0, so the body ends when the connection does.
    status, headers, rest = head_and_rest(server.raw(get("/gen", version="HTTP/1.0")))
    assert status == "HTTP/1.0 200 OK"
    assert "content-length" not in headers
    assert "transfer-encoding" not in headers
    assert headers["connection"] == "close"
    assert rest == b"abcd"


def test_http11_body_without_length_is_chunked(server):
    status, headers, rest = head_and_rest(server.raw(get("/gen")))
    assert status == "HTTP/1.1 200 OK"
    assert headers["transfer-encoding"] == "chunked"
    assert rest == b"2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"


def test_http12_is_answered_as_http11(server):
    # RFC 9110 §2.5 and §6.2: served as 1.1, answered with the highest version we implement.
    status, _, body, _ = split_framed(server.raw(get("/hello", version="HTTP/1.2")))
    assert status == "HTTP/1.1 200 OK"
    assert body == b"hello"


# --- Response splitting (CVE-2018-1000164 in Gunicorn): what the app says is checked before it is sent

@pytest.mark.parametrize("path", ["/crlf-header", "/crlf-status", "/bad-length"])
def test_unsafe_app_head_becomes_a_500(server, path):
    raw = server.raw(get(path))
    status, _, _, extra = split_framed(raw)
    assert status == "HTTP/1.1 500 Internal Server Error"
    assert b"pwned" not in raw
    assert b"split" not in raw
    assert raw.count(b"HTTP/1.1 ") == 1
    assert extra == b""


# --- Framing the client can rely on

def test_body_shorter_than_content_length_closes_the_connection(server):
    # The client would wait for the missing bytes forever; only closing tells it the response is over.
    # A second request is pipelined behind the first: it must not be answered on this broken connection.
    raw = server.raw(get("/short", keep=True) + get("/hello"))
    status, headers, rest = head_and_rest(raw)
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-length"] == "10"
    assert rest == b"abc"  # then the close
    assert raw.count(b"HTTP/1.1 ") == 1


def test_nothing_is_read_after_a_refused_request(server):
    # DESIGN §6: after a framing error the rest of the bytes cannot be trusted to start a request.
    raw = server.raw(get("/hello", "POST", extra=b"Content-Length: +1\r\n", keep=True) + b"x" + get("/hello"),
                     shutdown=True)
    status, _, _, extra = split_framed(raw)
    assert status.startswith("HTTP/1.1 400 ")
    assert extra == b""
    assert b"hello" not in raw


# --- When a connection may carry another request (RFC 9112 §9.3)

def test_pipelined_requests_on_a_persistent_connection(server):
    with server.connect() as s:
        s.sendall(get("/hello", keep=True) + get("/list", keep=True))
        responses = read_responses(s, 2)
    if server.keeps_alive:
        assert [(status, body) for status, _, body in responses] == [("HTTP/1.1 200 OK", b"hello"),
                                                                     ("HTTP/1.1 200 OK", b"abcde")]
    else:
        assert [status for status, _, _ in responses] == ["HTTP/1.1 200 OK"]
        assert b"\r\nConnection: close\r\n" in responses[0][1]


def test_http10_keep_alive(server):
    # A 1.0 client keeps the connection only if the response says keep-alive (RFC 9112 §C.2.2).
    with server.connect() as s:
        s.sendall(get("/hello", version="HTTP/1.0", extra=b"Connection: keep-alive\r\n", keep=True) * 2)
        responses = read_responses(s, 2)
    expected = 2 if server.keeps_alive else 1
    assert [status for status, _, _ in responses] == ["HTTP/1.0 200 OK"] * expected
    assert (b"\r\nConnection: keep-alive\r\n" in responses[0][1]) == server.keeps_alive


def test_connection_close_is_honoured(server):
    with server.connect() as s:
        s.sendall(get("/hello") + get("/hello", keep=True))
        raw = recv_all(s)  # returns: the server closed
    assert raw.count(b"HTTP/1.1 200 OK") == 1
    assert b"\r\nConnection: close\r\n" in raw


def test_compression_before_chunked_closes_after_the_response(server):
    # DESIGN §6: the undecoded gzip body is passed through, so nothing after it on this connection is trusted.
    smuggled = (get("/hello", "POST", extra=b"Transfer-Encoding: gzip, chunked\r\n", keep=True) + b"0\r\n\r\n" +
                get("/list", keep=True))
    with server.connect() as s:
        s.sendall(smuggled)
        raw = recv_all(s)
    assert raw.count(b"HTTP/1.1 200 OK") == 1
    assert b"abcde" not in raw


# --- A head that does not arrive in time is answered 408 and dropped (slowloris)

@pytest.fixture(params=WORKERS)
def short_timeout_server(gcorn, request):
    # -t 2: header_timeout is never longer (the head deadline is 2 s), and a worker stuck on a slow client for
    # longer would be killed by the master instead of dropping the client itself.
    return gcorn("echo:app", "-t", "2", "-k", request.param)


def wait_for_close(sock, deadline, drip=b""):
    """Sends `drip` a byte at a time until the server closes; returns (seconds to close, bytes received)."""
    start = time.monotonic()
    sock.settimeout(0.25)
    received = b""
    for i in range(10 ** 6):
        if time.monotonic() - start > deadline:
            raise AssertionError("the server kept a slow client for more than %ss" % deadline)
        if i < len(drip):
            try:
                sock.sendall(drip[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - start, received
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return time.monotonic() - start, received
        if not chunk:
            return time.monotonic() - start, received
        received += chunk


def test_stalled_head_is_dropped(short_timeout_server):
    server = short_timeout_server
    workers = server.worker_pids()
    with server.connect() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finished
        elapsed, received = wait_for_close(s, deadline=15)  # never closed: the head timeout is not applied
    assert elapsed >= 1.5, elapsed  # not before the 2 s head timeout
    assert received.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), received  # RFC 9110 §15.5.9
    # The worker dropped the client itself and serves the next one.
    with server.get("/after") as r:
        assert r.status == 200
    assert server.worker_pids() == workers


def test_dripping_head_is_dropped_at_its_deadline(short_timeout_server):
    # Bytes keep arriving, every 0.25 s: the deadline bounds the whole head, not the gap between reads.
    server = short_timeout_server
    workers = server.worker_pids()
    with server.connect() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        # Dripping 4000 bytes takes 1000 s: closed within 15 s, the deadline bounded the whole head.
        elapsed, received = wait_for_close(s, deadline=15, drip=b"X-Slow: " + b"a" * 4000)
    assert elapsed >= 1.5, elapsed
    assert received.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), received
    with server.get("/after") as r:
        assert r.status == 200
    assert server.worker_pids() == workers
