#!/usr/bin/python3
# http_loop: the client scripts/package-test keeps running while it reloads an app, to show that no request
# fails. Alternates TCP and unix-socket requests until SIGTERM, then prints "requests=N failures=M".
import http.client
import signal
import socket
import sys
import time


class unix_connection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def get(conn):
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        body = response.read()
        return response.status == 200 and body.startswith(b"Hello"), f"{response.status} {body[:60]!r}"
    except (OSError, http.client.HTTPException) as e:
        return False, repr(e)
    finally:
        conn.close()


def main(host, port, unix_path):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    requests = failures = 0
    while not stop:
        for conn in (http.client.HTTPConnection(host, int(port), timeout=10), unix_connection(unix_path, 10)):
            ok, what = get(conn)
            requests += 1
            if not ok:
                failures += 1
                print(f"http_loop: failed: {what}", file=sys.stderr, flush=True)
        time.sleep(0.005)
    print(f"requests={requests} failures={failures}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
