# An app that patches the stdlib with gevent itself, the most common gevent idiom (issue 15), then blocks in
# ordinary stdlib calls: time.sleep, a socket round trip and urllib to a slow local service, threads, ssl.
from gevent import monkey
monkey.patch_all()

import json  # noqa: E402
import socket  # noqa: E402
import ssl  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402

import overlap  # noqa: E402


def _app(environ, start_response):
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    path = environ["PATH_INFO"]
    if path == "/sleep":
        time.sleep(0.3)
        out = {"slept": True}
    elif path == "/urllib":
        url = query["url"][0]
        context = ssl.create_default_context(cafile=query["cafile"][0]) if "cafile" in query else None
        out = {"body": urllib.request.urlopen(url, timeout=30, context=context).read().decode()}
    elif path == "/socket":
        host, port = query["host"][0], int(query["port"][0])
        with socket.create_connection((host, port), timeout=30) as s:
            s.sendall(b"GET /raw HTTP/1.0\r\nHost: x\r\n\r\n")
            out = {"reply": s.makefile("rb").read().split(b"\r\n\r\n", 1)[1].decode()}
    elif path == "/threads":
        lock, inside = threading.Lock(), {"now": 0, "peak": 0}

        def work():
            with lock:
                inside["now"] += 1
                inside["peak"] = max(inside["peak"], inside["now"])
            time.sleep(0.2)
            with lock:
                inside["now"] -= 1
        threads = [threading.Thread(target=work) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out = {"inner_peak": inside["peak"]}
    elif path == "/pg_sleep":
        # psycogreen, as gevent apps set it up: psycopg2 waits with gevent's wait_read/wait_write on the hub.
        import psycopg2
        from psycogreen.gevent import patch_psycopg
        patch_psycopg()
        conn = psycopg2.connect(host="127.0.0.1", port=int(query["port"][0]), user="postgres", dbname="postgres",
                                connect_timeout=30)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_sleep(0.3), pg_backend_pid()")
                out = {"backend": cur.fetchone()[1]}
        finally:
            conn.close()
    elif path == "/patched":
        out = {name: monkey.is_module_patched(name) for name in ("socket", "time", "threading", "ssl", "select")}
    body = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


app = overlap.track(_app)
