# A test app that reports what it received as JSON: method, path, query, selected environ keys, headers,
# and the body's length and SHA-256. Wrapped in wsgiref's validator to catch PEP 3333 violations.
import hashlib
import json
from wsgiref.validate import validator

KEYS = ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "RAW_URI", "CONTENT_TYPE",
        "CONTENT_LENGTH", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR", "REMOTE_PORT",
        "wsgi.url_scheme", "wsgi.input_terminated", "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once")


def _app(environ, start_response):
    body = b""
    if environ.get("PATH_INFO") != "/no-read":
        digest = hashlib.sha256()
        total = 0
        inp = environ["wsgi.input"]
        while True:
            chunk = inp.read(65536)
            if not chunk:
                break
            digest.update(chunk)
            total += len(chunk)
            if total <= 65536:
                body += chunk
    else:
        digest, total = hashlib.sha256(), 0
    report = {k: environ.get(k) for k in KEYS if k in environ}
    report["wsgi.version"] = list(environ["wsgi.version"])
    report["headers"] = {k[5:]: v for k, v in environ.items() if k.startswith("HTTP_")}
    report["body_length"] = total
    report["body_sha256"] = digest.hexdigest()
    report["body"] = body.decode("latin-1") if total <= 65536 else None
    out = json.dumps(report).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
    return [out]


app = validator(_app)
