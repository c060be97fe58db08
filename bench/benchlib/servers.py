"""Server processes for bench/run: start one pinned to a CPU, wait until it answers, stop it cleanly."""

import http.client
import os
import re
import signal
import ssl
import subprocess
import time
from pathlib import Path

from benchlib import APPS
from benchlib.procfs import descendants, on_cpu, open_files_preexec


class ServerSkipped(Exception):
    """The server cannot run this scenario (e.g. a worker class gcorn does not have yet)."""


# Lines in a server log that suggest something went wrong during the benchmark.
LOG_PROBLEM = re.compile(
    r"Traceback|Segmentation|core dumped|Abort|CRITICAL|\[ERROR\]|\[WARNING\]|error:|"
    r"WORKER TIMEOUT|"
    r"exited with|was sent SIG|killed|Booting worker", re.IGNORECASE)
BOOTING = re.compile(r"Booting worker with pid: (\d+)")


class Server:
    """One server (gcorn, gunicorn or nginx) process tree, pinned to a CPU (or floating for cpu
    None), logging to a file.  env: variables added to the server's environment; nofile: its
    RLIMIT_NOFILE (0: inherited); tls: it serves HTTPS."""

    def __init__(self, name, argv, port, log_path, cpu, env=None, nofile=0, tls=False):
        self.name = name
        self.port = port
        self.argv = argv
        self.log_path = log_path
        self.cpu = cpu
        self.env = env or {}
        self.nofile = nofile
        self.tls = tls
        self.proc = None
        self.returncode = None
        self.boot_workers = []

    @property
    def family(self):
        """gcorn, gunicorn or nginx: gcorn-async and gcorn-baseline are gcorn too."""
        return self.name.split("-")[0]

    @property
    def url(self):
        return "%s://127.0.0.1:%d/" % ("https" if self.tls else "http", self.port)

    def get(self, path="/", timeout=2.0):
        """One GET on a fresh connection (Connection: close): (status, body); raises OSError."""
        if self.tls:
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               context=ssl._create_unverified_context())
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path, headers={"Connection": "close"})
            response = conn.getresponse()
            return response.status, response.read()
        except http.client.HTTPException as e:
            raise OSError(str(e)) from e
        finally:
            conn.close()

    def start(self, timeout=30.0):
        """Starts the server and waits until it answers 200 on /; raises ServerSkipped if not.

        taskset (if pinned) execs the server, so proc.pid is the master itself.  The server gets
        its own session: a Ctrl-C in the terminal then reaches only this script (and wrk), which
        stops the servers in order, and the whole group can be killed as a last resort.
        """
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(on_cpu(self.cpu, self.argv),
                                     stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, cwd=str(APPS),
                                     env=dict(os.environ, **self.env),
                                     preexec_fn=open_files_preexec(self.nofile),
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                raise ServerSkipped("exited with code %d at startup: %s"
                                    % (self.returncode, self.log_tail(3) or "(empty log)"))
            try:
                if self.get()[0] == 200:
                    self.boot_workers = self._settled_workers()
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise ServerSkipped("did not answer on port %d within %.0f s" % (self.port, timeout))

    def _settled_workers(self, timeout=5.0):
        """The processes below the master once their set has not changed for 0.3 s: the first
        worker may answer before the master has forked the others."""
        deadline = time.monotonic() + timeout
        seen, stable = descendants(self.proc.pid), 0
        while stable < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
            now = descendants(self.proc.pid)
            seen, stable = now, stable + 1 if now == seen else 0
        return seen

    def stop(self, grace=15.0):
        """SIGTERM (a graceful stop for gcorn and gunicorn, a fast one for nginx), wait; SIGKILL the
        group if that hangs."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                print("  note: %s did not stop within %.0f s of SIGTERM; killing it"
                      % (self.name, grace))
                self._killpg()
                self.proc.wait()
        self.returncode = self.proc.returncode
        # Workers normally exit before the master; make sure none is left behind.
        for _ in range(50):
            if not self._group_alive():
                break
            time.sleep(0.1)
        else:
            print("  note: %s left processes behind after exit; killing them" % self.name)
            self._killpg()
        self.log_file.close()

    def _group_alive(self):
        try:
            os.killpg(self.proc.pid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def _killpg(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n):
        lines = [l for l in self.log_text().splitlines() if l.strip()]
        return " | ".join(lines[-n:])

    def log_problems(self, expected=None):
        """Suspicious log lines, ignoring the boot of the workers there were at the start and
        lines that match `expected` (a regex: what the scenario itself caused, e.g. the new
        workers of a TTIN)."""
        booted = set(self.boot_workers)

        def normal(line):
            boot = BOOTING.search(line)
            return (boot and int(boot.group(1)) in booted
                    or expected is not None and expected.search(line))
        return [line for line in self.log_text().splitlines()
                if LOG_PROBLEM.search(line) and not normal(line)]


# ---------------------------------------------------------------------------------------------
# gcorn's Python package, TLS certificate, nginx
# ---------------------------------------------------------------------------------------------

def in_build_tree(binary):
    """True if the gcorn binary sits in a meson build tree (a meson-private directory up to four
    levels up): gcorn then imports its Python package from the source tree; a copy elsewhere looks
    in the install directory and needs PYTHONPATH instead."""
    path = Path(binary).resolve().parent
    for directory in [path] + list(path.parents)[:3]:
        if (directory / "meson-private").is_dir():
            return True
    return False


def make_certificate(directory):
    """A self-signed EC P-256 certificate for 127.0.0.1 and localhost, made once with openssl in
    directory: (certfile, keyfile).  All TLS servers of a run share it."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    if not cert.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                        "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


NGINX = "/usr/sbin/nginx"

NGINX_CONF = """\
# Generated by bench/run: nginx's "return 200" as the floor of what an HTTP server costs.
{user}worker_processes 1;
pid {prefix}/nginx.pid;
error_log stderr warn;
events {{
    worker_connections {connections};
}}
http {{
    access_log off;
    keepalive_requests 1000000000;
    keepalive_timeout 75s;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port}{ssl};
{certificate}        location / {{
            default_type text/plain;
            return 200 "{body}";
        }}
    }}
}}
"""


def nginx_command(prefix, port, body, certificate=None, connections=4096):
    """argv of an nginx that answers every request with 200 and body, on 127.0.0.1:port: one
    worker process, no access log, unlimited keep-alive, HTTPS with certificate (certfile,
    keyfile) if given.  Everything it writes stays in prefix (a fresh directory; the pid file and
    temp directories) or goes to stderr (its error log, which lands in the server log like the
    other servers').  As root it keeps its workers root too ("user root"): the prefix is only
    root's, and the workers of an nginx started as another user cannot switch users anyway."""
    prefix.mkdir(parents=True, exist_ok=True)
    tls = ""
    if certificate:
        # TLS 1.3 as gcorn and Gunicorn negotiate it (nginx 1.22's default stops at 1.2).
        tls = ("        ssl_certificate %s;\n        ssl_certificate_key %s;\n"
               "        ssl_protocols TLSv1.2 TLSv1.3;\n" % tuple(certificate))
    conf = NGINX_CONF.format(user="user root;\n" if os.geteuid() == 0 else "", prefix=prefix,
                             connections=connections, port=port,
                             ssl=" ssl" if certificate else "", certificate=tls,
                             body=body.decode().replace("\\", "\\\\").replace('"', '\\"'))
    (prefix / "nginx.conf").write_text(conf)
    return [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"]
