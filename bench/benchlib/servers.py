"""Server processes for bench/run: start one pinned to a CPU, wait until it answers, stop it cleanly."""

import http.client
import os
import re
import signal
import subprocess
import time

from benchlib import APPS
from benchlib.procfs import descendants


class ServerSkipped(Exception):
    """The server cannot run this scenario (e.g. a worker class gcorn does not have yet)."""


# Lines in a server log that suggest something went wrong during the benchmark.
LOG_PROBLEM = re.compile(
    r"Traceback|Segmentation|core dumped|Abort|CRITICAL|\[ERROR\]|error:|WORKER TIMEOUT|"
    r"exited with|was sent SIG|killed|Booting worker", re.IGNORECASE)


class Server:
    """One server (gcorn or gunicorn) process tree, pinned to a CPU, logging to a file."""

    def __init__(self, name, argv, port, log_path, cpu):
        self.name = name
        self.port = port
        self.argv = argv
        self.log_path = log_path
        self.cpu = cpu
        self.proc = None
        self.returncode = None
        self.boot_workers = []

    @property
    def url(self):
        return "http://127.0.0.1:%d/" % self.port

    def start(self, timeout=30.0):
        """Starts the server and waits until it answers 200 on /; raises ServerSkipped if not.

        taskset execs the server, so proc.pid is the master itself.  The server gets its own
        session: a Ctrl-C in the terminal then reaches only this script (and wrk), which stops
        the servers in order, and the whole group can be killed as a last resort.
        """
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(["taskset", "-c", str(self.cpu)] + self.argv,
                                     stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, cwd=str(APPS),
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                raise ServerSkipped("exited with code %d at startup: %s"
                                    % (self.returncode, self.log_tail(3) or "(empty log)"))
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/", headers={"Connection": "close"})
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    self.boot_workers = descendants(self.proc.pid)
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise ServerSkipped("did not answer on port %d within %.0f s" % (self.port, timeout))

    def stop(self, grace=15.0):
        """SIGTERM (graceful stop for both servers), wait; SIGKILL the group if that hangs."""
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

    def log_problems(self):
        """Suspicious log lines, ignoring the first 'Booting worker' (the normal start)."""
        lines = [l for l in self.log_text().splitlines() if LOG_PROBLEM.search(l)]
        boots = [l for l in lines if "booting worker" in l.lower()]
        return [l for l in lines if l not in boots[:1]]

