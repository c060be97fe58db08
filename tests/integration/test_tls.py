# TLS on every worker class (--certfile/--keyfile, client certificates, versions, ALPN), against a test CA
# made with the openssl CLI at test time; curl and Python's ssl as clients.
import hashlib
import http.client
import json
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

from tls_ca import make_ca, server_args

APP = r'''
import hashlib, json, os, tempfile

BIG = os.path.join(tempfile.gettempdir(), "gcorn-tls-big-%d" % os.getpid())

def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/big":  # 1 MiB through wsgi.file_wrapper (sendfile on plain sockets)
        with open(BIG, "wb") as f:
            f.write(bytes(range(256)) * 4096)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](open(BIG, "rb"))
    body = environ["wsgi.input"].read()
    info = {"scheme": environ["wsgi.url_scheme"], "peercert": environ.get("gcorn.peercert"), "path": path,
            "md5": hashlib.md5(body).hexdigest(), "length": len(body)}
    out = json.dumps(info).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
    return [out]
'''

CLASSES = ["sync", "gthread", "async"]


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def tls_server(gcorn, ca):
    def start(worker_class, *args, **kw):
        return gcorn(None, "-k", worker_class, "--threads", "4", *server_args(ca), *args, source=APP, **kw)
    return start


def client_context(ca, cert=False):
    ctx = ssl.create_default_context(cafile=str(ca / "ca.pem"))
    if cert:
        ctx.load_cert_chain(str(ca / "client.pem"), str(ca / "client.key"))
    return ctx


def https(server, ctx, path="/", method="GET", body=None):
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=10)
    try:
        conn.request(method, path, body=body)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


@pytest.mark.parametrize("worker_class", CLASSES)
def test_https_with_curl(tls_server, ca, worker_class):
    server = tls_server(worker_class)
    out = subprocess.run(["curl", "-sS", "--cacert", str(ca / "ca.pem"), "https://127.0.0.1:%d/" % server.port,
                          "https://localhost:%d/again" % server.port], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    for line in out.stdout.replace("}{", "}\n{").splitlines():
        assert json.loads(line)["scheme"] == "https"


@pytest.mark.parametrize("worker_class", CLASSES)
def test_https_with_python_ssl(tls_server, ca, worker_class):
    server = tls_server(worker_class)
    ctx = client_context(ca)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=10)
    upload = bytes(range(256)) * 1024 * 3  # several TLS records
    for _ in range(3):
        conn.request("POST", "/", body=upload)
        r = conn.getresponse()
        info = json.loads(r.read())
        assert (info["scheme"], info["length"], info["md5"]) == ("https", len(upload), hashlib.md5(upload).hexdigest())
        assert info["peercert"] is None
    assert conn.sock.selected_alpn_protocol() == "http/1.1"  # ALPN (RFC 7301): never h2
    conn.request("GET", "/big")
    r = conn.getresponse()
    assert hashlib.md5(r.read()).hexdigest() == hashlib.md5(bytes(range(256)) * 4096).hexdigest()
    conn.close()


@pytest.mark.parametrize("worker_class", ["gthread", "async"])
def test_keepalive_over_tls(tls_server, ca, worker_class):
    server = tls_server(worker_class)
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=client_context(ca), timeout=10)
    socks = set()
    for _ in range(10):
        conn.request("GET", "/")
        assert conn.getresponse().read()
        socks.add(id(conn.sock))
    assert len(socks) == 1
    conn.close()


# Pipelined requests as two TLS records in one TCP write, then after a pause a third. OpenSSL reads ahead of the
# record it decrypts, so the second request waits in its buffer, not in the socket; the server must serve it
# without waiting for the socket (where nothing more arrives), and the connection's next wait must see the third.
@pytest.mark.parametrize("worker_class", ["gthread", "async"])
def test_pipelined_requests_over_tls(tls_server, ca, worker_class):
    server = tls_server(worker_class)
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context(ca).wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")

    def flush():
        if outgoing.pending:
            raw.sendall(outgoing.read())

    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            flush()
            incoming.write(raw.recv(65536))
    flush()
    received = b""

    def receive(responses):
        nonlocal received
        while received.count(b"HTTP/1.1 200") < responses:
            try:
                received += tls.read(65536)
            except ssl.SSLWantReadError:
                data = raw.recv(65536)
                assert data, received
                incoming.write(data)

    request = b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n"
    tls.write(request % 1)
    tls.write(request % 2)  # a second record, sent with the first in one write
    flush()
    receive(2)
    time.sleep(0.2)
    tls.write(request % 3)
    flush()
    receive(3)
    paths = [json.loads(body)["path"] for body in re.findall(rb"\r\n\r\n(\{[^}]*\})", received)]
    assert paths == ["/1", "/2", "/3"]
    raw.close()


@pytest.mark.parametrize("worker_class", CLASSES)
def test_required_client_certificate(tls_server, ca, worker_class):
    server = tls_server(worker_class, "--ca-certs", str(ca / "ca.pem"), "--cert-reqs", "2")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https(server, client_context(ca))
    status, body = https(server, client_context(ca, cert=True))
    assert status == 200
    pem = json.loads(body)["peercert"]
    assert pem.startswith("-----BEGIN CERTIFICATE-----")
    assert ssl.PEM_cert_to_DER_cert(pem) == ssl.PEM_cert_to_DER_cert((ca / "client.pem").read_text())
    server.wait_for_log("TLS handshake failed")


def test_optional_client_certificate(tls_server, ca):
    server = tls_server("gthread", "--ca-certs", str(ca / "ca.pem"), "--cert-reqs", "1")
    assert json.loads(https(server, client_context(ca))[1])["peercert"] is None
    assert json.loads(https(server, client_context(ca, cert=True))[1])["peercert"]


@pytest.mark.parametrize("worker_class", CLASSES)
def test_unsupported_protocol_version_is_refused(tls_server, ca, worker_class):
    server = tls_server(worker_class, "--ssl-version", "TLSv1_3")
    old = client_context(ca)
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        https(server, old)
    assert https(server, client_context(ca))[0] == 200  # TLS 1.3 still works


@pytest.mark.parametrize("worker_class", CLASSES)
def test_plain_http_to_the_tls_port(tls_server, ca, worker_class):
    server = tls_server(worker_class)
    answer = server.raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=20)  # a hang times out here
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer
    assert https(server, client_context(ca))[0] == 200  # the worker is fine
    log = server.log()
    assert "[ERROR]" not in log and "TLS handshake failed" in log


def test_garbage_handshakes_are_logged_at_debug(tls_server, ca):
    server = tls_server("async")
    for _ in range(20):
        server.raw(b"\x16\x03\x01\x00\x05hello" + b"\x00" * 64, timeout=5)
    assert https(server, client_context(ca))[0] == 200
    lines = [l for l in server.log().splitlines() if "TLS handshake failed" in l]
    assert len(lines) >= 20 and all("[DEBUG]" in l for l in lines)  # (and the readiness probes)
    assert "[ERROR]" not in server.log()


@pytest.mark.parametrize("worker_class,stalled", [("async", 50), ("gthread", 2)])
def test_a_stalled_handshake_does_not_block_other_clients(tls_server, ca, worker_class, stalled):
    server = tls_server(worker_class, "-t", "30")
    hello_start = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"  # the first bytes of a ClientHello, then nothing
    slow = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(stalled)]
    try:
        for s in slow:
            s.sendall(hello_start)
        time.sleep(0.2)
        # Blocked behind the stalled handshakes it would wait for their 30 s timeout; https() gives up at 10 s.
        assert https(server, client_context(ca))[0] == 200
    finally:
        for s in slow:
            s.close()


def test_certificates_are_reloaded_on_hup(gcorn, ca, tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    for name in ("server.pem", "server.key"):
        shutil.copy(ca / name, live / name)
    server = gcorn(None, "--certfile", str(live / "server.pem"), "--keyfile", str(live / "server.key"), source=APP)
    assert https(server, client_context(ca))[0] == 200
    other = make_ca(tmp_path / "other")
    for name in ("server.pem", "server.key"):
        shutil.copy(other / name, live / name)
    old_workers = server.worker_pids()
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            if https(server, client_context(other))[0] == 200 and not set(old_workers) & set(server.worker_pids()):
                break
        except (ssl.SSLError, ConnectionError):
            pass
        time.sleep(0.1)
    else:
        raise AssertionError("the new certificate was not served:\n" + server.log())
    with pytest.raises(ssl.SSLError):
        https(server, client_context(ca))  # the old CA no longer matches


def test_a_bad_certificate_fails_the_boot(gcorn, ca, tmp_path):
    server = gcorn(None, "--certfile", str(ca / "server.pem"), "--keyfile", str(ca / "client.key"), source=APP,
                   ready=False)
    assert server.proc.wait(30) == 3
    server.expected_exit = 3
    assert "Cannot set up TLS: cannot load keyfile" in server.log()


# ---- Gunicorn's ssl_context(config, default_ssl_context_factory) server hook ----

SSL_CONTEXT_CONF = r'''
import ssl

def ssl_context(conf, default_ssl_context_factory):
    context = default_ssl_context_factory()  # certfile, keyfile, cert_reqs, ... from gcorn's settings
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    conf_seen = "conf.certfile=%s" % conf.certfile.rsplit("/", 1)[-1]
    print("ssl_context hook ran: " + conf_seen, flush=True)
    return context
'''


def conf_server(gcorn, tmp_path, conf, *args, **kw):
    path = tmp_path / "conf" / "gunicorn.conf.py"  # not in the working directory, where every gcorn would read it
    path.parent.mkdir(exist_ok=True)
    path.write_text(conf)
    return gcorn(None, "-c", str(path), *args, source=APP, **kw)


def tls12_only(ca):
    ctx = client_context(ca)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


@pytest.mark.parametrize("worker_class", CLASSES)
def test_ssl_context_hook_is_honoured(gcorn, ca, tmp_path, worker_class):
    server = conf_server(gcorn, tmp_path, SSL_CONTEXT_CONF, "-k", worker_class, *server_args(ca))
    server.wait_for_log("ssl_context hook ran: conf.certfile=server.pem")
    status, body = https(server, client_context(ca))  # TLS 1.3, the factory's certificate
    assert status == 200 and json.loads(body)["scheme"] == "https"
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https(server, tls12_only(ca))  # refused: the hook raised the minimum to TLS 1.3
    # ... and the same client is served without the hook (gcorn's own context allows TLS 1.2)
    plain = gcorn(None, "-k", worker_class, *server_args(ca), source=APP)
    assert https(plain, tls12_only(ca))[0] == 200


def test_ssl_context_hook_may_build_the_context_itself(gcorn, ca, tmp_path):
    conf = r'''
import ssl

def ssl_context(conf, default_ssl_context_factory):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(%r, %r)
    context.load_verify_locations(%r)
    context.verify_mode = ssl.CERT_REQUIRED  # client certificates, though gcorn's cert_reqs says none
    return context
''' % (str(ca / "server.pem"), str(ca / "server.key"), str(ca / "ca.pem"))
    server = conf_server(gcorn, tmp_path, conf, "-k", "gthread", *server_args(ca))
    status, body = https(server, client_context(ca, cert=True))
    assert status == 200 and json.loads(body)["peercert"].startswith("-----BEGIN CERTIFICATE-----")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https(server, client_context(ca))  # no client certificate: refused, as the hook's context says


@pytest.mark.parametrize("returned", ["None", "ssl.create_default_context(ssl.Purpose.SERVER_AUTH)"])
def test_an_ssl_context_hook_returning_no_server_context_fails_the_boot(gcorn, ca, tmp_path, returned):
    conf = "import ssl\n\ndef ssl_context(conf, factory):\n    return %s\n" % returned
    server = conf_server(gcorn, tmp_path, conf, *server_args(ca), ready=False)
    assert server.proc.wait(30) == 3
    server.expected_exit = 3
    assert "Cannot set up TLS: the ssl_context hook failed" in server.log(), server.log()


def test_ssl_context_hook_from_toml(gcorn, ca, tmp_path):
    (tmp_path / "tls_hooks.py").write_text(SSL_CONTEXT_CONF)
    server = gcorn(None, *server_args(ca), source=APP, config='[hooks]\nssl_context = "tls_hooks:ssl_context"\n')
    assert https(server, client_context(ca))[0] == 200
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https(server, tls12_only(ca))
