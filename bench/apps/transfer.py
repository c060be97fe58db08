# Large bodies for bench/run's transfer scenario, streamed so the app itself holds at most one
# chunk: PUT/POST /upload reads wsgi.input in 1 MiB chunks and answers the byte count; GET /iter
# returns the size of the file $BENCH_BLOB as an iterable of 1 MiB chunks (the same zero bytes
# each time); GET /file returns that file through wsgi.file_wrapper (sendfile where the server
# uses it). Anything else: hello world, for the readiness check.
import os

CHUNK = 1 << 20
ZEROS = bytes(CHUNK)
BODY = b"Hello, World!"


def upload(environ):
    stream, total = environ["wsgi.input"], 0
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            return str(total).encode()
        total += len(chunk)


def chunks(size):
    while size > 0:
        yield ZEROS if size >= CHUNK else ZEROS[:size]
        size -= CHUNK


def app(environ, start_response):
    path, blob = environ["PATH_INFO"], os.environ.get("BENCH_BLOB", "")
    if path == "/upload":
        body = upload(environ)
    elif path == "/iter":
        size = os.path.getsize(blob)
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(size))])
        return chunks(size)
    elif path == "/file":
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(os.path.getsize(blob)))])
        return environ["wsgi.file_wrapper"](open(blob, "rb"), CHUNK)
    else:
        body = BODY
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
