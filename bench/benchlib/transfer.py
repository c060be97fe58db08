"""1 GiB uploads and downloads over loopback: throughput and the worker's memory (bench/run's
transfer scenario, app bench/apps/transfer.py).

Each measured run of a server is three transfers, one after the other, each on a new connection
(Connection: close), with curl pinned to the wrk CPU:

  upload         curl -T FILE: a PUT of 1 GiB; the app reads wsgi.input in 1 MiB chunks and
                 answers the byte count, which is checked;
  download-iter  the app returns an iterable of 1 MiB chunks, 1 GiB in all;
  download-file  the app returns wsgi.file_wrapper of a 1 GiB file (sendfile where the server
                 uses it).

The file is sparse (made with truncate), so neither curl nor the server reads a disk: the figures
are the servers' own and the kernel's loopback.  GB/s is curl's average (bytes / whole transfer
time, 10^9 bytes per GB).  Memory: the worker's VmRSS right before the transfer ("idle") and its
peak during it, from VmHWM after resetting it (/proc/PID/clear_refs; otherwise from VmRSS sampled
every 10 ms, which can miss a short peak).  "RSS growth" is peak - idle: a server that streams
keeps it flat, one that buffers a body grows by its size.
"""

import os
import subprocess
import threading
import time

from benchlib import Measurement
from benchlib.procfs import (CoreWatch, children_cpu_seconds, descendants, on_cpu, quiet,
                             reset_peak_rss, tree_cpu_seconds, vm_kib)
from benchlib.text import fmt, fmt_range, median_of, print_rows, spread, summaries

BLOB_SIZE = 1 << 30
MIB = 1024.0
# name: (method and path on the server).  curl -T makes the PUT.
TRANSFERS = {"upload": "upload", "download-iter": "iter", "download-file": "file"}
CURL_STATS = "\n%{http_code} %{size_upload} %{size_download} %{time_total}"


def make_blob(directory):
    """The sparse 1 GiB file uploaded and served (made once per run), read through once: the
    first read of a hole fills the page cache with zeroed pages, which would slow down whichever
    transfer came first (by 2-3x, measured)."""
    path = directory / "blob-1g"
    if not path.exists():
        with open(path, "wb") as f:
            f.truncate(BLOB_SIZE)
        with open(path, "rb", buffering=0) as f:
            buf = bytearray(1 << 20)
            while f.readinto(buf):
                pass
    return path


class RssSampler(threading.Thread):
    """VmRSS of some processes every 10 ms until stop(): the peak of each, in KiB."""

    def __init__(self, pids):
        super().__init__(daemon=True)
        self.peak = {pid: 0 for pid in pids}
        self.done = threading.Event()
        self.start()

    def run(self):
        while not self.done.wait(0.01):
            for pid in self.peak:
                self.peak[pid] = max(self.peak[pid], vm_kib(pid, "VmRSS") or 0)

    def stop(self):
        self.done.set()
        self.join()
        return self.peak


def curl_command(url, name, blob):
    """curl for one transfer; its stdout ends with a CURL_STATS line (after the upload's answer)."""
    cmd = ["curl", "-sS", "--max-time", "600", "-H", "Connection: close", "-w", CURL_STATS]
    if name == "upload":
        # -T streams the file (--data-binary @FILE would read it all into memory); "Expect:"
        # drops the 100-continue round trip (up to 1 s of waiting with a server that ignores it).
        cmd += ["-T", str(blob), "-H", "Expect:"]
    else:
        cmd += ["-o", "/dev/null"]
    return cmd + [url]


def parse_curl(stdout):
    """(answer body, http code, bytes moved, seconds) from curl_command's output."""
    body, _, stats = stdout.rpartition("\n")
    try:
        code, up, down, seconds = stats.split()
        return body, int(code), max(int(float(up)), int(float(down))), float(seconds)
    except ValueError:
        return body, None, None, None


def peak_rss(workers, sampled, exact):
    """The peak VmRSS (KiB) of each worker during the transfer: VmHWM if it was reset before it,
    else the sampled peak (the larger of the two, to be safe)."""
    return {pid: max(sampled.get(pid, 0), (vm_kib(pid, "VmHWM") or 0) if exact else 0)
            for pid in workers}


def run_transfer(server, name, blob, args):
    """One transfer against server; returns its figures (see the module docstring).  "noisy":
    other processes took more than --noise of the server's or curl's CPU meanwhile."""
    workers = descendants(server.proc.pid)
    idle = {pid: vm_kib(pid, "VmRSS") or 0 for pid in workers}
    exact = all([reset_peak_rss(pid) for pid in workers])
    sampler = RssSampler(workers)
    cpu0, _ = tree_cpu_seconds(server.proc.pid)
    curl0 = children_cpu_seconds()
    cores = CoreWatch([args.server_cpu], [args.wrk_cpu])
    t0 = time.monotonic()
    proc = subprocess.run(on_cpu(args.wrk_cpu,
                                 curl_command(server.url + TRANSFERS[name], name, blob)),
                          capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    cores.stop()
    curl1 = children_cpu_seconds()
    cpu1, _ = tree_cpu_seconds(server.proc.pid)
    peak = peak_rss(workers, sampler.stop(), exact)
    body, code, size, seconds = parse_curl(proc.stdout)
    growth = {pid: peak[pid] - idle[pid] for pid in workers}
    worst = max(growth, key=growth.get) if growth else None
    r = {"http_code": code, "bytes": size, "seconds": seconds,
         "gb_per_s": size / seconds / 1e9 if size and seconds else None,
         "idle_rss_mib": idle[worst] / MIB if worst else None,
         "peak_rss_mib": peak[worst] / MIB if worst else None,
         "rss_growth_mib": growth[worst] / MIB if worst else None,
         "peak_from_vmhwm": exact, "workers": workers,
         "server_cpu_s": cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None,
         "curl_cpu_s": curl1 - curl0}
    r["cpu_s_per_gb"] = (r["server_cpu_s"] / (size / 1e9)
                         if r["server_cpu_s"] is not None and size else None)
    r["server_core"], r["curl_core"] = cores.usage((r["server_cpu_s"] or 0.0) / elapsed,
                                                   r["curl_cpu_s"] / elapsed)
    r["noisy"] = max(r["server_core"]["foreign"], r["curl_core"]["foreign"]) > args.noise
    r["ok"] = (code == 200 and size == os.path.getsize(blob)
               and (name != "upload" or body.strip() == str(size)))
    if not r["ok"]:
        r["curl_output"] = (proc.stdout[-500:] + proc.stderr[-500:]).strip()
    return r


class TransferMeasurement(Measurement):
    """The transfer scenario's measurement (see the module docstring) for bench/run."""

    def measure(self, server, scenario, args, rep):
        """One run: the three transfers, each after waiting for a quiet machine."""
        blob = make_blob(args.tmp)
        run = {"transfers": {}}
        for name in TRANSFERS:
            waited = quiet(args)
            r = run["transfers"][name] = run_transfer(server, name, blob, args)
            r["quiet_wait_s"] = waited
            print("[%s] %-12s run %d/%d: %-13s %s GB/s  RSS idle %s MiB, growth %s MiB  "
                  "%s CPU s/GB%s%s"
                  % (scenario.name, server.name, rep, args.repeat, name,
                     fmt(r["gb_per_s"], "%.2f"), fmt(r["idle_rss_mib"], "%.1f"),
                     fmt(r["rss_growth_mib"], "%.1f"), fmt(r["cpu_s_per_gb"], "%.2f"),
                     "  NOISY (other load on the pinned cores)" if r["noisy"] else "",
                     "" if r["ok"] else "  FAILED: %s" % r.get("curl_output")))
        run["server_alive"] = server.proc.poll() is None
        return run

    def summarize(self, runs, scenario, args):
        """Per transfer: median GB/s and CPU s/GB, the largest RSS growth, failures; and how much
        the idle RSS moved from the first transfer to the last (a leak shows there)."""
        s = {}
        for name in TRANSFERS:
            done = [r["transfers"][name] for r in runs if name in r["transfers"]]
            growth = spread("rss_growth_mib", [t["rss_growth_mib"] for t in done])
            s[name] = spread("gb_per_s", [t["gb_per_s"] for t in done])
            s[name].update({"cpu_s_per_gb": median_of(done, "cpu_s_per_gb"),
                            "rss_growth_mib": growth["rss_growth_mib_max"],
                            "idle_rss_mib": median_of(done, "idle_rss_mib"),
                            "failures": sum(1 for t in done if not t["ok"]),
                            "noisy": sum(1 for t in done if t["noisy"])})
        idle = [r["transfers"][n]["idle_rss_mib"] for r in runs for n in TRANSFERS
                if r["transfers"].get(n, {}).get("idle_rss_mib") is not None]
        s["idle_rss_drift_mib"] = idle[-1] - idle[0] if idle else None
        s["runs"] = len(runs)
        return s

    def notes(self, name, summary, scenario):
        out = ["%s: %d %s transfer(s) failed (see the JSON)" % (name, summary[t]["failures"], t)
               for t in TRANSFERS if summary[t]["failures"]]
        noisy = sum(summary[t]["noisy"] for t in TRANSFERS)
        if noisy:
            out.append("%s: %d of %d transfers measured despite other load on the pinned cores"
                       % (name, noisy, len(TRANSFERS) * summary["runs"]))
        drift = summary["idle_rss_drift_mib"]
        if drift is not None and drift > 16:
            out.append("%s: idle RSS grew by %.0f MiB from the first transfer to the last"
                       % (name, drift))
        return out

    def print_table(self, scenario, result, args):
        print()
        print("== %s: %s (1 GiB each, curl, Connection: close, %d run(s), medians; RSS growth: "
              "the largest)" % (scenario.name, scenario.description, result["repeat"]))
        header = ["server", "transfer", "GB/s", "(min-max)", "CPU s/GB", "idle RSS",
                  "RSS growth", "failed"]
        rows = []
        for name, summary in summaries(result):
            for t in TRANSFERS:
                s = summary[t]
                rows.append([name, t, fmt(s["gb_per_s"], "%.2f"),
                             fmt_range(s["gb_per_s_min"], s["gb_per_s_max"], "%.2f"),
                             fmt(s["cpu_s_per_gb"], "%.2f"), fmt(s["idle_rss_mib"], "%.1f MiB"),
                             fmt(s["rss_growth_mib"], "%.1f MiB"), s["failures"]])
        print_rows(header, rows, left=2)

