# Gunicorn's own environ entries (26.1): wsgi.early_hints (103 Early Hints, RFC 8297) and gunicorn.socket, on every
# worker class, seen by raw-socket clients.
import json
import socket

import pytest

from conftest import split_response
from test_arbiter import wait_until

CLASSES = ["sync", "gthread", "async"]

HINTS_APP = r'''
import json, os

LINKS = [("Link", "</style.css>; rel=preload; as=style"), (b"Link", b"</app.js>; rel=preload; as=script")]

def app(environ, start_response):
    path = environ["PATH_INFO"]
    hints = environ["wsgi.early_hints"]
    if path == "/crlf":  # response splitting through a hint: refused in the app
        hints([("Link", "</a.css>\r\nX-Injected: 1")])
    if path == "/bad-name":
        hints([("Li nk", "</a.css>")])
    if path == "/late":  # the head is out: the hint is dropped, quietly
        start_response("200 OK", [("Content-Type", "text/plain")])
        def body():
            yield b"first"
            yield repr(hints(LINKS)).encode()
        return body()
    returned = hints(LINKS)
    body = json.dumps({"pid": os.getpid(), "returned": repr(returned)}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
'''

EARLY_HINTS = (b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n"
               b"Link: </app.js>; rel=preload; as=script\r\n\r\n")


def hints_server(gcorn, worker_class):
    return gcorn(None, "-k", worker_class, "--threads", "2", source=HINTS_APP)


@pytest.mark.parametrize("worker_class", CLASSES)
def test_early_hints_come_before_the_response(gcorn, worker_class):
    server = hints_server(gcorn, worker_class)
    raw = server.raw(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert raw.startswith(EARLY_HINTS + b"HTTP/1.1 200 OK\r\n"), raw
    status, _, body = split_response(raw[len(EARLY_HINTS):])
    assert json.loads(body)["returned"] == "None"


@pytest.mark.parametrize("worker_class", ["gthread", "async"])
def test_early_hints_on_each_keepalive_request(gcorn, worker_class):
    server = hints_server(gcorn, worker_class)
    raw = server.raw(b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert raw.count(EARLY_HINTS) == 2 and raw.count(b"HTTP/1.1 200 OK\r\n") == 2, raw
    assert raw.index(EARLY_HINTS, 1) > raw.index(b"HTTP/1.1 200 OK\r\n")  # the second 103 belongs to request 2


@pytest.mark.parametrize("worker_class", CLASSES)
def test_no_early_hints_for_an_http10_client(gcorn, worker_class):
    server = hints_server(gcorn, worker_class)
    raw = server.raw(b"GET / HTTP/1.0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.0 200 OK\r\n") and b" 103 " not in raw, raw
    assert json.loads(split_response(raw)[2])["returned"] == "None"  # ignored, not an error


@pytest.mark.parametrize("worker_class", CLASSES)
def test_no_early_hints_once_the_response_started(gcorn, worker_class):
    server = hints_server(gcorn, worker_class)
    raw = server.raw(b"GET /late HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and b" 103 " not in raw, raw
    assert b"first" in raw and b"\r\nNone\r\n" in raw  # (chunked) the call returned None


@pytest.mark.parametrize("worker_class", CLASSES)
@pytest.mark.parametrize("path", ["/crlf", "/bad-name"])
def test_an_invalid_early_hint_raises_in_the_app(gcorn, worker_class, path):
    server = hints_server(gcorn, worker_class)
    pid = json.loads(split_response(server.raw(b"GET / HTTP/1.0\r\n\r\n"))[2])["pid"]
    raw = server.raw(b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % path.encode())
    assert raw.startswith(b"HTTP/1.1 500 "), raw  # nothing of the hint went out
    assert b"X-Injected" not in raw
    server.wait_for_log("ValueError: invalid early hint")
    # the worker lives on
    assert json.loads(split_response(server.raw(b"GET / HTTP/1.0\r\n\r\n"))[2])["pid"] == pid


SOCKET_APP = r'''
import gc, json, os

KEPT = []

def app(environ, start_response):
    sock = environ["gunicorn.socket"]
    if environ["PATH_INFO"] == "/kept":  # a socket kept from an earlier, finished connection
        body = json.dumps({"fileno": KEPT[0].fileno()}).encode()
    else:
        KEPT[:] = [sock]
        info = {"peer": list(sock.getpeername())[:2], "remote": [environ["REMOTE_ADDR"], int(environ["REMOTE_PORT"])],
                "local": list(sock.getsockname())[:2], "id": id(sock), "type": int(sock.type),
                "fileno_ok": sock.fileno() >= 0}
        sock.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY: apps do this
        del sock
        gc.collect()  # the socket object's fate is not tied to the app's references
        body = json.dumps(info).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
'''


def read_response(sock):
    """One Content-Length response off a kept-alive socket: (head, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "connection closed: %r" % data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    return head, body


# gevent's socket class is a wrapper, not a subclass of the stdlib's: its gunicorn.socket is made over a dup().
@pytest.mark.parametrize("worker_class", CLASSES + ["gevent"])
def test_gunicorn_socket_is_the_client_connection(gcorn, worker_class):
    server = gcorn(None, "-k", worker_class, source=SOCKET_APP)
    with server.connect() as c:
        c.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        head, body = read_response(c)
        info = json.loads(body)
        assert info["peer"] == info["remote"] == list(c.getsockname())
        assert info["local"] == ["127.0.0.1", server.port] and info["type"] == socket.SOCK_STREAM and info["fileno_ok"]


@pytest.mark.parametrize("worker_class", ["gthread", "async"])
def test_gunicorn_socket_over_keepalive_requests(gcorn, worker_class):
    server = gcorn(None, "-k", worker_class, source=SOCKET_APP)
    with server.connect() as c:
        seen = []
        for _ in range(4):  # the app drops its references and collects garbage every time
            c.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            head, body = read_response(c)
            assert head.startswith(b"HTTP/1.1 200 OK"), head
            seen.append(json.loads(body))
        assert all(s["peer"] == list(c.getsockname()) for s in seen)
        assert len({s["id"] for s in seen}) == 1  # one socket object per connection, not one per request
    # Once the connection is over, a socket object the app kept is closed (it never owned gcorn's descriptor).
    def kept_fileno():
        with server.connect() as c:
            c.sendall(b"GET /kept HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            return json.loads(read_response(c)[1])["fileno"]
    wait_until(lambda: kept_fileno() == -1)


CLOSING_APP = r'''
import json, os

def app(environ, start_response):
    sock = environ["gunicorn.socket"]
    if environ["PATH_INFO"] == "/close":
        sock.close()  # the app is done with it; the connection is not the app's to end
    elif environ["PATH_INFO"] == "/with":
        with sock:
            pass
    fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
    body = json.dumps({"closed": sock.fileno() == -1, "fds": len(fds)}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
'''


@pytest.mark.parametrize("worker_class", CLASSES)
def test_closing_gunicorn_socket_does_not_end_the_connection(gcorn, worker_class):
    server = gcorn(None, "-k", worker_class, source=CLOSING_APP)
    with server.connect() as c:
        keep_alive = worker_class != "sync"  # the sync worker closes after each response
        # The connection serves on; the socket object the app closed stays closed (one object per connection).
        for path in ("/close", "/with", "/"):
            c.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (path.encode(), b"" if keep_alive else b"Connection: close\r\n"))
            head, body = read_response(c)
            assert head.startswith(b"HTTP/1.1 200 OK"), head
            assert json.loads(body)["closed"]
            if not keep_alive:
                break


@pytest.mark.parametrize("worker_class", ["gthread", "async"])
def test_gunicorn_socket_takes_no_descriptor_of_its_own(gcorn, worker_class):
    # One descriptor per connection, as Gunicorn: 20 more connections whose socket objects exist (each served a
    # request) open 20 more descriptors in the worker, not 40 (a dup() per socket object would).
    server = gcorn(None, "-k", worker_class, "--threads", "4", source=CLOSING_APP)

    def fds(c):
        c.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        return json.loads(read_response(c)[1])["fds"]

    with server.connect() as probe:
        before = fds(probe)
        others = [server.connect() for _ in range(20)]
        try:
            for c in others:
                fds(c)
            after = fds(probe)
        finally:
            for c in others:
                c.close()
    assert 20 <= after - before < 25, (before, after)
