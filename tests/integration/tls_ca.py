# A throw-away certificate authority for the TLS tests, made with the openssl CLI at test time: a CA, a
# server certificate for localhost/127.0.0.1 and a client certificate, all PEM files in one directory.
import subprocess
from pathlib import Path


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _key_and_csr(name, subject, cwd):
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", name + ".key",
             "-out", name + ".csr", "-subj", subject, cwd=cwd)


def _sign(name, extensions, cwd):
    (cwd / (name + ".ext")).write_text(extensions)
    _openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", name + ".pem", "-days", "2", "-extfile", name + ".ext", cwd=cwd)


def make_ca(directory):
    """Writes ca.pem, server.pem/.key and client.pem/.key into `directory`; returns it as a Path."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=gcorn test CA", cwd=d)
    _key_and_csr("server", "/CN=localhost", d)
    _sign("server", "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                    "extendedKeyUsage=serverAuth\n", d)
    _key_and_csr("client", "/CN=gcorn test client", d)
    _sign("client", "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n", d)
    return d


def server_args(ca):
    return ["--certfile", str(ca / "server.pem"), "--keyfile", str(ca / "server.key")]
