# PEP 3333 test apps for test_wsgi.py: one small app per behaviour, most wrapped in wsgiref's validator.
# Side effects the tests check (close() calls, read counts) go to files in the server's working directory.
import hashlib
import io
import json
import os
import sys
import time
from wsgiref.validate import validator

CLOSE_LOG = "closed.log"  # relative to the server's cwd (the test's tmp_path)


def record(event):
    with open(CLOSE_LOG, "a") as f:
        f.write(event + "\n")


def _plain(body, status="200 OK", ctype="text/plain"):
    return status, [("Content-Type", ctype), ("Content-Length", str(len(body)))], [body]


def _jsonable(v):
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    return "<%s>" % type(v).__name__


def environ_app(environ, start_response):
    """The whole environ as JSON (non-JSON values as '<type>'), plus the worker's pid and the body."""
    if environ["PATH_INFO"] == "/errors":
        environ["wsgi.errors"].write("wsgi.errors line from the app\n")
        environ["wsgi.errors"].writelines(["second ", "line\n"])
        environ["wsgi.errors"].flush()
    body = b""
    while True:
        chunk = environ["wsgi.input"].read(8192)
        if not chunk:
            break
        body += chunk
    report = {k: _jsonable(v) for k, v in environ.items()}
    report["types"] = {k: type(v).__name__ for k, v in environ.items()}
    report["pid"] = os.getpid()
    report["body"] = body.decode("latin-1")
    status, headers, out = _plain(json.dumps(report).encode(), ctype="application/json")
    start_response(status, headers)
    return out


validated_environ = validator(environ_app)


def _routes(environ, start_response):
    """GET /, POST /post (body digest), /stream (sleeps between chunks), /write (the write() callable)."""
    path = environ["PATH_INFO"]
    if path == "/post":
        digest, total, inp = hashlib.sha256(), 0, environ["wsgi.input"]
        line = inp.readline(100)  # readline(size) must work too (PEP 3333 wsgi.input)
        digest.update(line)
        total += len(line)
        while True:
            chunk = inp.read(65536)
            if not chunk:
                break
            digest.update(chunk)
            total += len(chunk)
        out = json.dumps({"length": total, "sha256": digest.hexdigest(),
                          "content_length": environ.get("CONTENT_LENGTH")}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [out]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _slow_chunks(float(environ.get("QUERY_STRING") or 1))
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        write(b"then ")
        return [b"returned"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello ", b"world"]


def _slow_chunks(pause):
    for i in range(3):
        if i:
            time.sleep(pause)
        yield b"chunk-%d;" % i


routes = validator(_routes)


class TrackedBody:
    """A response iterable that records its close(); `fail_at` raises after that many chunks, `forever` streams
    64 KiB chunks until the client goes away."""

    def __init__(self, name, chunks, fail_at=None):
        self.name, self.chunks, self.fail_at, self.sent = name, chunks, fail_at, 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.fail_at is not None and self.sent == self.fail_at:
            raise RuntimeError("boom in the middle of %s" % self.name)
        if self.chunks is not None and self.sent >= len(self.chunks):
            raise StopIteration
        self.sent += 1
        return self.chunks[self.sent - 1] if self.chunks is not None else b"x" * 65536

    def close(self):
        record("closed %s after %d" % (self.name, self.sent))


def tracked(environ, start_response):
    """/ok, /fail-mid (raises after one chunk), /forever (until disconnect), /fail-mid-length (Content-Length)."""
    path = environ["PATH_INFO"]
    headers = [("Content-Type", "text/plain")]
    if path == "/ok":
        start_response("200 OK", headers)
        return TrackedBody("ok", [b"one ", b"two"])
    if path == "/fail-mid":
        start_response("200 OK", headers)
        return TrackedBody("fail-mid", [b"first ", b"never"], fail_at=1)
    if path == "/fail-mid-length":
        start_response("200 OK", headers + [("Content-Length", "100")])
        return TrackedBody("fail-mid-length", [b"first ", b"never"], fail_at=1)
    if path == "/forever":
        start_response("200 OK", headers)
        return TrackedBody("forever", None)
    if path == "/pid":
        start_response("200 OK", headers)
        return [str(os.getpid()).encode()]
    if path == "/raise":
        raise ValueError("the app failed on purpose")
    if path == "/raise-after-start":
        start_response("200 OK", headers + [("Content-Length", "5")])
        raise ValueError("the app failed after start_response")
    if path == "/list-no-start":
        return [b"hello"]
    if path == "/empty-no-start":
        return []
    if path == "/str-body":
        start_response("200 OK", headers)
        return ["a str, not bytes"]
    start_response("404 Not Found", headers)
    return [b"not found"]


def exc_info_app(environ, start_response):
    """start_response's exc_info: /before replaces the response, /after re-raises once the head is out,
    /twice calls start_response again without exc_info."""
    path = environ["PATH_INFO"]
    if path == "/before":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "yes")])
        try:
            raise KeyError("replaced")
        except KeyError:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"replacement body"]
    if path == "/after":
        return _fail_after_head(start_response)
    if path == "/not-exc-info":
        start_response("200 OK", [("Content-Type", "text/plain")])
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")], (None, None, None))
        return [b"should not be sent"]
    if path == "/write-str":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write("a str")
        return [b"should not be sent"]
    if path == "/refused-replacement":
        # The replacement head has a field that is refused: the app swallows the ValueError and returns a body.
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "yes")])
        try:
            raise KeyError("replaced")
        except KeyError:
            try:
                start_response("503 Service Unavailable", [("X-Bad", "a\r\nInjected: yes")], sys.exc_info())
            except ValueError:
                pass  # swallowed: the app goes on without a head
        return [b"should not be sent"]
    if path == "/twice":
        start_response("200 OK", [("Content-Type", "text/plain")])
        start_response("201 Created", [("Content-Type", "text/plain")])
        return [b"should not be sent"]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b""]


def _fail_after_head(start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"partial;"
    try:
        raise KeyError("too late")
    except KeyError:
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
    record("exc_info did not raise")
    yield b"not reached"


BAD_HEADERS = {
    "crlf-value": ("X-Bad", "a\r\nInjected: yes"),
    "lf-value": ("X-Bad", "a\nInjected: yes"),
    "cr-name": ("X-Bad\r\nInjected", "yes"),
    "colon-name": ("X-Bad: Injected", "yes"),
    "space-name": ("X Bad", "yes"),
    "empty-name": ("", "yes"),
    "non-latin1-value": ("X-Bad", "\u20ac"),
    "non-latin1-name": ("X-B\u0101d", "yes"),
    "bytes-name": (b"X-Bad", "yes"),
    "bytes-value": ("X-Bad", b"yes"),
    "int-value": ("X-Bad", 42),
    "nul-value": ("X-Bad", "a\x00b"),
}

BAD_STATUS = {"status-crlf": "200 OK\r\nInjected: yes", "status-bytes": b"200 OK", "status-short": "20",
              "status-word": "OK"}


def bad_headers(environ, start_response):
    """/NAME uses BAD_HEADERS[NAME] or BAD_STATUS[NAME]; /good-latin1 sends a legal latin-1 value."""
    name = environ["PATH_INFO"][1:]
    if name == "good-latin1":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Latin1", "caf\u00e9")])
        return [b"ok"]
    if name == "not-a-tuple":
        start_response("200 OK", [("Content-Type", "text/plain"), "X-Bad: yes"])
        return [b"ok"]
    if name in BAD_STATUS:
        start_response(BAD_STATUS[name], [("Content-Type", "text/plain")])
        return [b"ok"]
    start_response("200 OK", [("Content-Type", "text/plain"), BAD_HEADERS[name]])
    return [b"ok"]


class CountingFile:
    """A file-like object over a real file that counts read() calls, so a test can tell sendfile from iteration."""

    def __init__(self, f):
        self.f, self.reads = f, 0

    def read(self, n=-1):
        self.reads += 1
        return self.f.read(n)

    def fileno(self):
        return self.f.fileno()

    def tell(self):
        return self.f.tell()

    def close(self):
        record("file closed after %d reads" % self.reads)
        self.f.close()


def files(environ, start_response):
    """?PATH[&offset=N][&bytesio]: the file through wsgi.file_wrapper (optionally from an offset, or via BytesIO)."""
    import io
    from urllib.parse import parse_qs
    q = parse_qs(environ["QUERY_STRING"], keep_blank_values=True)
    path = q["path"][0]
    f = open(path, "rb")
    if "offset" in q:
        f.seek(int(q["offset"][0]))
    if "bytesio" in q:
        data = f.read()
        f.close()
        f = io.BytesIO(data)
        filelike = f
    else:
        filelike = CountingFile(f)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](filelike, 65536)


def big_stream(environ, start_response):
    """?N: N MiB from a generator, 1 MiB per chunk, each chunk different (see expected_big_stream)."""
    mib = int(environ["QUERY_STRING"] or 100)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return (big_chunk(i) for i in range(mib))


def big_chunk(i):
    return bytes([i % 256]) * 1024 + bytes(range(256)) * 4092


def upload_digest(environ, start_response):
    """Reads wsgi.input in 64 KiB chunks and answers with its length and SHA-256."""
    digest, total, inp = hashlib.sha256(), 0, environ["wsgi.input"]
    while True:
        chunk = inp.read(65536)
        if not chunk:
            break
        digest.update(chunk)
        total += len(chunk)
    out = json.dumps({"length": total, "sha256": digest.hexdigest()}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
    return [out]


def input_as_stream(environ, start_response):
    """Reads wsgi.input the way code that wants a file object does: as an io stream, through io.TextIOWrapper."""
    inp = environ["wsgi.input"]
    buf = bytearray(4)
    report = {"is_iobase": isinstance(inp, io.IOBase), "readable": inp.readable(), "seekable": inp.seekable()}
    report["readinto"] = inp.readinto(buf) if environ.get("CONTENT_LENGTH") in (None, "", "0") else None
    with io.TextIOWrapper(inp, encoding="utf-8") as text:
        report["text"] = text.read()
    out = json.dumps(report).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [out]


def input_methods(environ, start_response):
    """Reads the body with every wsgi.input method PEP 3333 lists, reporting what each returned."""
    inp = environ["wsgi.input"]
    report = {
        "readline": inp.readline().decode(),
        "readline_limited": inp.readline(3).decode(),
        "read_n": inp.read(4).decode(),
        "readlines_hint": [l.decode() for l in inp.readlines(1)],
        "iterated": [l.decode() for l in inp],
        "read_at_end": inp.read().decode(),
        "read_n_at_end": inp.read(10).decode(),
    }
    out = json.dumps(report).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [out]


def read_all(environ, start_response):
    """wsgi.input.read() with no size: the whole body (wsgi.input_terminated lets apps do this safely)."""
    data = environ["wsgi.input"].read()
    out = json.dumps({"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [out]


_kept = {}


def stale_callables(environ, start_response):
    """/keep stores this request's start_response, write and wsgi.input; /use calls them in a later request."""
    if environ["PATH_INFO"] == "/keep":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        _kept.update(start_response=start_response, write=write, input=environ["wsgi.input"])
        return [b"kept"]
    results = []
    for name, call in (("start_response", lambda: _kept["start_response"]("200 OK", [])),
                       ("write", lambda: _kept["write"](b"x")),
                       ("input", lambda: _kept["input"].read(1))):
        try:
            call()
            results.append("%s: no error" % name)
        except Exception as e:
            results.append("%s: %s: %s" % (name, type(e).__name__, e))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["\n".join(results).encode()]
