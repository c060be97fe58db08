# Running behind a proxy: forwarded_allow_ips (with CIDR networks) gating X-Forwarded-* and
# secure_scheme_headers, the PROXY protocol v1/v2, and a real nginx in front over TCP, a unix socket and
# its stream module's `proxy_protocol on;`.
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import time

import pytest

from conftest import free_port
from tls_ca import make_ca, server_args

APP = r'''
import json

def app(environ, start_response):
    info = {k: environ.get(k) for k in ("REMOTE_ADDR", "REMOTE_PORT", "SERVER_NAME", "SERVER_PORT",
                                         "HTTP_X_FORWARDED_FOR", "wsgi.url_scheme")}
    body = json.dumps(info).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
'''

CLASSES = ["sync", "gthread", "async"]


def body_of(response):
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), response
    return json.loads(body)


def exchange(sock, *pieces):
    """Sends the pieces (pausing between them) and reads until the server closes."""
    for i, p in enumerate(pieces):
        if i:
            time.sleep(0.05)
        sock.sendall(p)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


GET = b"GET / HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n"


def v2_header(src, sport, dst, dport, tlvs=b"", command=0x21):
    family = socket.AF_INET6 if ":" in src else socket.AF_INET
    addresses = socket.inet_pton(family, src) + socket.inet_pton(family, dst) + struct.pack("!HH", sport, dport)
    body = addresses + tlvs
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([command, 0x21 if family == socket.AF_INET6 else 0x11]) + \
        struct.pack("!H", len(body)) + body


def wait_ready_behind_proxy(server, timeout=20):
    """conftest's readiness probe, preceded by the PROXY header the server expects from 127.0.0.1."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert server.proc.poll() is None, server.log()
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as s:
                s.sendall(b"PROXY UNKNOWN\r\nGET /__ready__ HTTP/1.0\r\n\r\n")
                if s.recv(1):
                    return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("gcorn did not become ready:\n" + server.log())


@pytest.fixture
def proxied(gcorn):
    def start(*args, **kw):
        server = gcorn(None, *args, source=APP, ready="--proxy-protocol" not in args, **kw)
        if "--proxy-protocol" in args:
            wait_ready_behind_proxy(server)
        return server
    return start


@pytest.mark.parametrize("allowed,https", [("127.0.0.0/8", True), ("10.0.0.0/8,::1", False), ("*", True)])
def test_forwarded_allow_ips_accepts_networks(proxied, allowed, https):
    server = proxied("--forwarded-allow-ips", allowed)
    info = body_of(server.raw(b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n"))
    assert info["wsgi.url_scheme"] == ("https" if https else "http")


def test_forwarded_allow_ips_refuses_what_is_not_an_address(proxied):
    from conftest import run_gcorn
    out = run_gcorn("--forwarded-allow-ips", "10.0.0.0/40", "--check-config", "x:app")
    assert out.returncode != 0 and "forwarded_allow_ips" in out.stderr


def test_secure_scheme_headers_from_the_config_file(proxied):
    server = proxied(config='secure_scheme_headers = ["X-Scheme=https"]\n')
    ask = b"GET / HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n"
    assert body_of(server.raw(ask % b"X-Scheme: https\r\n"))["wsgi.url_scheme"] == "https"
    assert body_of(server.raw(ask % b"X-Forwarded-Proto: https\r\n"))["wsgi.url_scheme"] == "http"


@pytest.mark.parametrize("worker_class", CLASSES)
def test_proxy_protocol_v1_sets_the_client_address(proxied, worker_class):
    server = proxied("-k", worker_class, "--proxy-protocol")
    with server.connect() as s:
        # The header arrives in pieces and is followed at once by the request: exactly the header is consumed.
        info = body_of(exchange(s, b"PROXY TCP4 192.0.2.7 ", b"127.0.0.1 4321 8000\r\n" + GET))
    assert (info["REMOTE_ADDR"], info["REMOTE_PORT"]) == ("192.0.2.7", "4321")


@pytest.mark.parametrize("worker_class", ["gthread", "async"])
def test_proxy_protocol_header_comes_once_per_connection(proxied, worker_class):
    server = proxied("-k", worker_class, "--proxy-protocol")
    with server.connect() as s:
        s.sendall(b"PROXY TCP6 2001:db8::1 ::1 5555 80\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
        first = s.recv(65536)
        second = exchange(s, GET)
    assert body_of(first)["REMOTE_ADDR"] == body_of(second)["REMOTE_ADDR"] == "2001:db8::1"


def test_proxy_protocol_v2_with_tls_record(proxied):
    server = proxied("--proxy-protocol")
    ssl_tlv = b"\x20\x00\x05\x01\x00\x00\x00\x00"  # PP2_TYPE_SSL, PP2_CLIENT_SSL, verify 0
    with server.connect() as s:
        info = body_of(exchange(s, v2_header("198.51.100.9", 40000, "127.0.0.1", 443, ssl_tlv) + GET))
    assert (info["REMOTE_ADDR"], info["REMOTE_PORT"], info["wsgi.url_scheme"]) == ("198.51.100.9", "40000", "https")
    with server.connect() as s:  # LOCAL (a health check of the proxy itself): the socket's own address
        info = body_of(exchange(s, v2_header("198.51.100.9", 1, "127.0.0.1", 2, command=0x20) + GET))
    assert info["REMOTE_ADDR"] == "127.0.0.1" and info["wsgi.url_scheme"] == "http"


def test_proxy_protocol_is_required_from_allowed_front_ends(proxied):
    server = proxied("--proxy-protocol")
    for sent in (GET, b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n" + GET):
        with server.connect() as s:
            try:
                assert exchange(s, sent) == b""  # the spec forbids guessing: no header, no service
            except ConnectionResetError:
                pass
    assert "[ERROR]" not in server.log()


def test_proxy_header_from_other_peers_is_a_bad_request(proxied):
    server = proxied("--proxy-protocol", "--proxy-allow-from", "10.0.0.0/8")
    with server.connect() as s:
        assert exchange(s, b"PROXY TCP4 192.0.2.7 127.0.0.1 4321 8000\r\n" + GET).startswith(b"HTTP/1.1 400")
    with server.connect() as s:
        assert body_of(exchange(s, GET))["REMOTE_ADDR"] == "127.0.0.1"


@pytest.mark.parametrize("worker_class", CLASSES)
def test_proxy_protocol_before_tls(proxied, tmp_path, worker_class):
    ca = make_ca(tmp_path / "ca")
    server = proxied("-k", worker_class, "--proxy-protocol", *server_args(ca))
    ctx = ssl.create_default_context(cafile=str(ca / "ca.pem"))
    with server.connect() as raw:
        raw.sendall(b"PROXY TCP4 203.0.113.5 127.0.0.1 6000 443\r\n")
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            info = body_of(exchange(s, GET))
    assert (info["REMOTE_ADDR"], info["REMOTE_PORT"], info["wsgi.url_scheme"]) == ("203.0.113.5", "6000", "https")


# ---- a real nginx in front ----

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"


def wait_listening(port, proc, log, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError("nginx exited:\n" + log.read_text())
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("nginx is not listening on %d:\n%s" % (port, log.read_text()))


@pytest.fixture
def nginx(tmp_path):
    """nginx(body, ports) starts nginx on loopback with `body` after the main context, its prefix in tmp_path."""
    if not os.access(NGINX, os.X_OK):
        pytest.skip("nginx is not installed (Debian: nginx-light, libnginx-mod-stream)")
    started = []

    def start(body, ports):
        prefix = tmp_path / "nginx"
        (prefix / "logs").mkdir(parents=True, exist_ok=True)
        log = prefix / "logs" / "error.log"
        stream = "stream {" in body
        if stream and not os.path.exists(STREAM_MODULE):
            pytest.skip("nginx's stream module is not installed (Debian: libnginx-mod-stream)")
        conf = prefix / "nginx.conf"
        conf.write_text("\n".join([
            "load_module %s;" % STREAM_MODULE if stream else "",
            "user root;" if os.geteuid() == 0 else "",  # workers must reach sockets in the private tmp_path
            "worker_processes 1;",
            "pid %s;" % (prefix / "nginx.pid"),
            "error_log %s info;" % log,
            "events { worker_connections 64; }",
            body,
        ]))
        proc = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(log), "-g", "daemon off;"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(proc)
        for port in ports:
            wait_listening(port, proc, log)
        return proc

    yield start
    for proc in started:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def proxy_location(upstream):
    return """location / {
            proxy_pass %s;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
        }""" % upstream


def https_from(port, ca, source="127.0.0.2"):
    """GET / over https from another loopback address, so the original client is told apart from nginx."""
    ctx = ssl.create_default_context(cafile=str(ca / "ca.pem"))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10, source_address=(source, 0))
    conn.request("GET", "/")
    r = conn.getresponse()
    info, client_port = json.loads(r.read()), conn.sock.getsockname()[1]
    conn.close()
    return info, client_port


def test_nginx_https_front_over_tcp_and_a_unix_socket(proxied, nginx, tmp_path):
    ca = make_ca(tmp_path / "ca")
    sock = tmp_path / "gcorn.sock"
    server = proxied("-k", "gthread", "--threads", "4", "-b", "unix:%s" % sock)
    tcp_front, unix_front = free_port(), free_port()
    tls = "ssl_certificate %s; ssl_certificate_key %s;" % (ca / "server.pem", ca / "server.key")
    nginx("""http {
    access_log off;
    server { listen 127.0.0.1:%d ssl; %s %s }
    server { listen 127.0.0.1:%d ssl; %s %s }
}""" % (tcp_front, tls, proxy_location("http://127.0.0.1:%d" % server.port),
        unix_front, tls, proxy_location("http://unix:%s:" % sock)), [tcp_front, unix_front])

    info, _ = https_from(tcp_front, ca)
    assert info["REMOTE_ADDR"] == "127.0.0.1"  # nginx, which forwarded_allow_ips trusts ...
    assert info["HTTP_X_FORWARDED_FOR"] == "127.0.0.2"  # ... to name the client
    assert info["wsgi.url_scheme"] == "https"

    info, _ = https_from(unix_front, ca)
    assert info["REMOTE_ADDR"] == "" and info["REMOTE_PORT"] is None  # a unix socket's peer
    assert info["HTTP_X_FORWARDED_FOR"] == "127.0.0.2"
    assert info["wsgi.url_scheme"] == "https"  # a unix socket's peer is trusted as the local proxy
    assert (info["SERVER_NAME"], info["SERVER_PORT"]) == ("127.0.0.1", str(unix_front))  # from Host


def test_nginx_stream_with_proxy_protocol(proxied, nginx, tmp_path):
    ca = make_ca(tmp_path / "ca")
    sock = tmp_path / "gcorn.sock"
    # TLS passes through nginx to gcorn, after nginx's PROXY header; a second front forwards plain HTTP to a
    # unix socket, also with a PROXY header.
    server = proxied("-k", "async", "--proxy-protocol", *server_args(ca))
    plain = proxied("-k", "gthread", "--proxy-protocol", "-b", "unix:%s" % sock)
    tls_front, unix_front = free_port(), free_port()
    nginx("""stream {
    server { listen 127.0.0.1:%d; proxy_pass 127.0.0.1:%d; proxy_protocol on; }
    server { listen 127.0.0.1:%d; proxy_pass unix:%s; proxy_protocol on; }
}""" % (tls_front, server.port, unix_front, sock), [tls_front, unix_front])

    info, client_port = https_from(tls_front, ca)
    assert (info["REMOTE_ADDR"], info["REMOTE_PORT"]) == ("127.0.0.2", str(client_port))
    assert info["wsgi.url_scheme"] == "https"

    conn = http.client.HTTPConnection("127.0.0.1", unix_front, timeout=10, source_address=("127.0.0.2", 0))
    conn.request("GET", "/")
    info = json.loads(conn.getresponse().read())
    assert (info["REMOTE_ADDR"], info["REMOTE_PORT"]) == ("127.0.0.2", str(conn.sock.getsockname()[1]))
    conn.close()
    assert "[ERROR]" not in plain.log() + server.log()


@pytest.mark.parametrize("mode, v1_ok, v2_ok", [("v1", True, False), ("v2", False, True), ("auto", True, True)])
def test_proxy_protocol_modes_as_gunicorns(gcorn, mode, v1_ok, v2_ok):
    # proxy_protocol = off | v1 | v2 | auto (a bare --proxy-protocol means auto, before the app as after it).
    server = gcorn(None, "--proxy-protocol", mode, source=APP, ready=False)
    probe = b"PROXY UNKNOWN\r\n" if v1_ok else v2_header("127.0.0.1", 1, "127.0.0.1", 2, command=0x20)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
                if exchange(s, probe + GET).startswith(b"HTTP/1.1 200"):
                    break
        except OSError:
            time.sleep(0.05)
    v1 = b"PROXY TCP4 192.0.2.7 127.0.0.1 4321 8000\r\n"
    v2 = v2_header("198.51.100.9", 40000, "127.0.0.1", 443)
    for header, ok, client in ((v1, v1_ok, "192.0.2.7"), (v2, v2_ok, "198.51.100.9")):
        with server.connect() as s:
            try:
                answer = exchange(s, header + GET)
            except ConnectionResetError:
                answer = b""
        if ok:
            assert body_of(answer)["REMOTE_ADDR"] == client
        else:
            assert answer == b""  # a version this mode does not accept: no service


def test_proxy_protocol_off_and_the_bare_flag(tmp_path):
    from conftest import run_gcorn
    assert 'proxy_protocol = "off"' in run_gcorn("--print-config", "x:app").stdout
    assert 'proxy_protocol = "auto"' in run_gcorn("--print-config", "--proxy-protocol", "x:app").stdout
    assert 'proxy_protocol = "auto"' in run_gcorn("--print-config", "x:app", "--proxy-protocol").stdout
    assert 'proxy_protocol = "v2"' in run_gcorn("--print-config", "--proxy-protocol", "v2", "x:app").stdout
    bad = run_gcorn("--proxy-protocol=v3", "x:app")
    assert bad.returncode == 2 and "proxy_protocol" in bad.stderr
