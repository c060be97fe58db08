#!/usr/bin/python3
"""Memory per idle keep-alive connection: RSS growth of one async worker holding N idle connections.

Each client connection sends one request, reads the response and then stays open (keep-alive), the state
a real server spends most of its connections in. Reported: (worker RSS with N idle connections - RSS with
none) / N, for gcorn -k async and gunicorn -k gevent, same app, same run. A benchmark: it never asserts.
"""
import argparse
import os
import resource
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GCORN = os.environ.get("GCORN_BIN", os.path.join(ROOT, "build", "src", "gcorn"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def request(sock):
    sock.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
    data = b""
    while not data.endswith(b"Hello, World!"):
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("connection closed")
        data += chunk


def measure(name, cmd, port, n):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=HERE)
    try:
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    request(s)
                break
            except OSError:
                time.sleep(0.05)
        workers = children(proc.pid)
        worker = workers[0]
        # Warm up: a few hundred connections (pools, caches), then close them and take the baseline.
        warm = [socket.create_connection(("127.0.0.1", port)) for _ in range(200)]
        for s in warm:
            request(s)
        for s in warm:
            s.close()
        time.sleep(1)
        base = rss_kib(worker)
        conns = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            request(s)
            conns.append(s)
        time.sleep(1)
        after = rss_kib(worker)
        alive = sum(1 for s in conns if s.fileno() >= 0)
        for s in conns:
            s.close()
        per = (after - base) * 1024 / n
        print("%-24s baseline %7d KiB  with %d idle %7d KiB  -> %6.0f bytes per idle connection (%d alive)"
              % (name, base, n, after, per, alive))
        return per
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", "--connections", type=int, default=10000)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.connections + 100:
        sys.exit("RLIMIT_NOFILE hard limit %d is too low for %d connections" % (hard, args.connections))
    port = free_port()
    g = measure("gcorn -k async", [GCORN, "-k", "async", "-w", "1", "--worker-connections", str(args.connections + 500),
                                   "--keep-alive", "300", "-b", "127.0.0.1:%d" % port, "apps.hello:app"],
                port, args.connections)
    port = free_port()
    u = measure("gunicorn -k gevent", ["/usr/bin/python3", "-m", "gunicorn", "-k", "gevent", "-w", "1",
                                       "--worker-connections", str(args.connections + 500), "--keep-alive", "300",
                                       "-b", "127.0.0.1:%d" % port, "apps.hello:app"], port, args.connections)
    print("ratio gunicorn/gcorn: %.2fx less memory per idle connection" % (u / g if g > 0 else float("inf")))


if __name__ == "__main__":
    main()
