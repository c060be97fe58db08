# The async worker's batched response sends (issue 14, hub/send_ring): a complete keep-alive response leaves with
# the hub's round, all of the round's responses in one io_uring_enter. What a client must see is unchanged: every
# response whole and in order, whatever it pipelines and however slowly it reads; a client that stops reading holds
# up nobody else; and without io_uring (GCORN_NO_IO_URING, or a kernel or seccomp filter that refuses it) the same
# through send(2).
import os
import shutil
import socket
import subprocess
import threading
import time

import ctypes
import errno as errno_mod

import pytest

APP = r'''
def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/__ready__":
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]
    if path == "/empty":
        start_response("204 No Content", [])
        return []
    if environ["QUERY_STRING"] == "tiny-buffer":  # the smallest send buffer the kernel allows: a send comes back short
        import socket
        environ["gunicorn.socket"].setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    _, seq, size = path.split("/")  # /SEQ/SIZE: a body of SIZE bytes that starts with SEQ
    body = (seq + ":").encode().ljust(int(size), b"x")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''

MODES = {"io_uring": {}, "send": {"GCORN_NO_IO_URING": "1"}}


def read_response(f, head_request=False):
    """(status code, headers dict, body) of one response read off a buffered socket file."""
    status = f.readline()
    assert status.startswith(b"HTTP/1.1 "), "no status line: %r" % status
    headers = {}
    while (line := f.readline()) != b"\r\n":
        assert line, "connection closed inside a head"
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    code = int(status.split()[1])
    length = 0 if head_request or code in (204, 304) else int(headers["content-length"])
    body = f.read(length)
    assert len(body) == length, "body cut short: %d of %d bytes" % (len(body), length)
    return code, headers, body


def pipelined(requests):
    return b"".join(b"%s %s HTTP/1.1\r\nHost: t\r\n\r\n" % (m.encode(), p.encode()) for m, p in requests)


@pytest.mark.parametrize("mode", MODES)
def test_pipelined_responses_arrive_whole_and_in_order(gcorn, mode):
    server = gcorn(None, "-k", "async", source=APP, env=MODES[mode])
    sizes = [1, 13, 300, 4000, 16000, 16385, 70000, 2, 12000, 0]
    requests = []
    for i in range(60):
        requests.append(("GET", "/%d/%d" % (i, max(sizes[i % len(sizes)], len(str(i)) + 1))))
        if i % 7 == 3:
            requests.append(("HEAD", "/%d/500" % i))
        if i % 11 == 5:
            requests.append(("GET", "/empty"))
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(pipelined(requests))
        f = s.makefile("rb")
        for method, path in requests:
            code, headers, body = read_response(f, head_request=method == "HEAD")
            if path == "/empty":
                assert code == 204
            elif method == "HEAD":
                assert code == 200 and headers["content-length"] == "500" and body == b""
            else:
                seq, size = path[1:].split("/")
                assert code == 200 and len(body) == int(size) and body.startswith(seq.encode() + b":"), (path, body[:20])
        # The connection is still good for one more request after the batch.
        s.sendall(pipelined([("GET", "/last/20")]))
        assert read_response(f)[2].startswith(b"last:")


@pytest.mark.parametrize("mode", MODES)
def test_a_client_that_stops_reading_gets_every_response_and_holds_up_nobody(gcorn, mode):
    """Pipelined responses of 12 KB (small enough to be batched) fill the socket's buffers while the client does not
    read: sends come back short or with EAGAIN, and the rest must go out later, in order, without blocking the
    worker for other connections: sent by the reactor while the connection waits for its next request, and by the
    connection's next response (which must not wait for the socket beside the reactor's wait: one edge wakes one)."""
    server = gcorn(None, "-k", "async", source=APP, env=MODES[mode])
    n, size = 800, 12000  # 9.6 MB: more than the sockets' buffers take (4 MiB is the most a send buffer grows to)
    requests = [("GET", "/%d/%d" % (i, size)) for i in range(n)]
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # small: the server fills it soon
        sender = threading.Thread(target=s.sendall, args=(pipelined(requests),), daemon=True)
        sender.start()
        time.sleep(1.0)  # the server writes until the buffers are full, then must wait for us
        # Meanwhile another client is served at once: the stalled connection holds no one up.
        with server.get("/other/50", timeout=10) as r:
            assert r.read().startswith(b"other:")
        f = s.makefile("rb")
        for i in range(n):
            code, _, body = read_response(f)
            assert code == 200 and len(body) == size and body.startswith(b"%d:" % i), (i, body[:20])
        sender.join(30)


def slow_reader_request(server, size):
    """A connection with a small receive buffer that has asked for a `size`-byte response from a server socket with
    the smallest send buffer: the response cannot leave in one send."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    s.settimeout(30)
    s.connect(("127.0.0.1", server.port))
    s.sendall(b"GET /0/%d?tiny-buffer HTTP/1.1\r\nHost: t\r\n\r\n" % size)
    return s


@pytest.mark.parametrize("mode", MODES)
def test_a_slow_reader_gets_its_last_response_whole_past_the_keepalive(gcorn, mode):
    """The last response of a connection that then idles is still going out to a reader slower than --keep-alive:
    the keep-alive wait does not cut it off (a response sent at once had the write timeout; so has this one)."""
    server = gcorn(None, "-k", "async", "--keep-alive", "1", source=APP, env=MODES[mode])
    size = 16000
    with slow_reader_request(server, size) as s:
        time.sleep(2.5)  # past the keep-alive, with most of the response still in our socket or the server
        f = s.makefile("rb")
        code, _, body = read_response(f)
        assert code == 200 and len(body) == size and body.startswith(b"0:")
        # The connection, kept for the response, still serves its next request.
        s.sendall(b"GET /1/30 HTTP/1.1\r\nHost: t\r\n\r\n")
        code, _, body = read_response(f)
        assert code == 200 and body.startswith(b"1:")


@pytest.mark.parametrize("mode", MODES)
def test_a_client_that_half_closes_gets_its_last_response_whole(gcorn, mode):
    """The client shuts its side down after the request: the server sees the end of input while the response is
    still going out, and closes only after it."""
    server = gcorn(None, "-k", "async", source=APP, env=MODES[mode])
    size = 16000
    with slow_reader_request(server, size) as s:
        s.shutdown(socket.SHUT_WR)
        time.sleep(1.0)  # the server has read the end of input by now
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and len(body) == size and body.startswith(b"0:"), (head, len(body))


def io_uring_usable():
    """Whether this kernel lets a process set up an io_uring (io_uring_setup, syscall 425 on x86-64): not if it was
    built without it or a seccomp filter refuses it. gcorn then sends with send(2), which the tests above cover."""
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)  # struct io_uring_params, zeroed
    fd = libc.syscall(425, 4, params)
    if fd < 0:
        return ctypes.get_errno() not in (errno_mod.ENOSYS, errno_mod.EPERM)
    os.close(fd)
    return True


def worker_syscalls(server, duration_requests):
    """The send and io_uring syscalls the worker made while it served `duration_requests` keep-alive requests."""
    (worker,) = server.worker_pids()
    out = server.workdir / "strace.txt"
    tracer = subprocess.Popen(["strace", "-f", "-c", "-o", str(out), "-e", "trace=sendto,sendmsg,io_uring_enter",
                               "-p", str(worker)], stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        f = s.makefile("rb")
        for i in range(duration_requests):
            s.sendall(pipelined([("GET", "/%d/20" % i)]))
            assert read_response(f)[2].startswith(b"%d:" % i)
    tracer.send_signal(2)
    tracer.wait(30)
    counts = {}
    for line in out.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[-1] in ("sendto", "sendmsg", "io_uring_enter") and fields[3].isdigit():
            counts[fields[-1]] = int(fields[3])
    return counts


@pytest.mark.skipif(not shutil.which("strace"), reason="needs strace (scripts/dev installs it)")
@pytest.mark.skipif(not io_uring_usable(), reason="this kernel refuses io_uring: gcorn uses send(2) here")
def test_responses_leave_through_io_uring_and_through_send_without_it(gcorn):
    server = gcorn(None, "-k", "async", source=APP)
    counts = worker_syscalls(server, 200)
    assert counts.get("io_uring_enter", 0) >= 200 and counts.get("sendto", 0) + counts.get("sendmsg", 0) == 0, counts
    plain = gcorn(None, "-k", "async", source=APP, env={"GCORN_NO_IO_URING": "1"})
    counts = worker_syscalls(plain, 200)
    assert counts.get("sendto", 0) >= 200 and counts.get("io_uring_enter", 0) == 0, counts


@pytest.mark.parametrize("mode", MODES)
def test_a_response_before_the_worker_recycles_is_sent_whole(gcorn, mode):
    """--max-requests: the worker stops after its last request and closes its connections; a batched response is out
    before its connection closes, so the stream ends between responses, never inside one."""
    server = gcorn(None, "-k", "async", "--max-requests", "3", source=APP, env=MODES[mode])
    for round_ in range(3):
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
            s.sendall(pipelined([("GET", "/%d/%d" % (i, 9000)) for i in range(5)]))
            raw = b""
            while chunk := s.recv(65536):
                raw += chunk
        got = 0
        while raw:
            head, sep, rest = raw.partition(b"\r\n\r\n")
            assert sep and head.startswith(b"HTTP/1.1 200"), raw[:100]
            length = int(next(l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")))
            assert len(rest) >= length, "response %d cut short: %d of %d bytes" % (got, len(rest), length)
            assert rest[:length].startswith(b"%d:" % got)
            raw = rest[length:]
            got += 1
        # The first worker owes 2 (its first request was the fixture's readiness probe), then closes. Later rounds may
        # meet a worker that is already stopping, which answers the request in hand only: at least one.
        if round_ == 0:
            assert got == 2, "the worker owed 2 of the 5 pipelined requests, sent %d" % got
        assert got >= 1
