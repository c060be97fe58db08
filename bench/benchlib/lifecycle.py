"""Worker boot and HUP: how fast a server gets a new worker serving (bench/run's worker-boot and
hup scenarios).

worker-boot: the server runs with --preload (the app is imported once, in the master) and the
Gunicorn-style configuration file bench/apps/bench_hooks.py, whose server hooks write the time of
pre_fork (master, right before the fork), post_fork (worker, right after it) and
post_worker_init (worker, ready to serve) to a file, with the worker's age.  A run sends TTIN
(one more worker) SPAWNS times, waiting each time for the new worker's post_worker_init; a
worker's boot time is post_worker_init - pre_fork: fork to ready, app import excluded.  Then TTOU
as often, back to one worker.  A hook that did not run (or ran out of order) is reported.

hup: the app (bench/apps/pid.py) answers its worker's PID.  A run notes the live workers, sends
HUP and polls with a new connection per request, as fast as it can, until a PID that is not one
of the old workers answers: the time from the HUP to that answer, how many requests failed
meanwhile and the longest one took (a server that drops its listeners or stops its old workers
before a new one accepts shows there).  Then it waits for the old workers to exit.
"""

import os
import re
import signal
import time

from benchlib import Measurement
from benchlib.procfs import descendants, quiet, wait_gone
from benchlib.text import fmt, fmt_range, median_of, print_rows, spread, summaries

SPAWNS = 5
HOOKS = ("pre_fork", "post_fork", "post_worker_init")


def read_hook_log(path):
    """{age: {event: time}} from bench_hooks.py's lines "EVENT AGE PID TIME"."""
    events = {}
    try:
        with open(path) as f:
            for line in f:
                event, age, _pid, t = line.split()
                events.setdefault(age, {})[event] = float(t)
    except FileNotFoundError:
        pass
    return events


def wait_until(predicate, timeout, step=0.01):
    """Polls predicate() until it is true (True) or timeout seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def spawn_one(server, log, timeout=15.0):
    """TTIN, then waits until a worker not in the log before has run post_worker_init; returns
    its age, or None if none did within timeout."""
    known = set(read_hook_log(log))

    def new_ready():
        return [age for age, ev in read_hook_log(log).items()
                if age not in known and "post_worker_init" in ev]
    os.kill(server.proc.pid, signal.SIGTTIN)
    if not wait_until(new_ready, timeout):
        return None
    return new_ready()[0]


def boot_times(events, ages):
    """(boot ms per age, fork ms per age, problems): problems name a hook that did not run or the
    ages whose hooks ran out of order."""
    boots, forks, problems = [], [], []
    for age in ages:
        ev = events.get(age, {})
        missing = [h for h in HOOKS if h not in ev]
        if missing:
            problems.append("worker age %s: no %s" % (age, ", ".join(missing)))
            continue
        if not ev["pre_fork"] <= ev["post_fork"] <= ev["post_worker_init"]:
            problems.append("worker age %s: hooks out of order %s" % (age, ev))
        boots.append((ev["post_worker_init"] - ev["pre_fork"]) * 1e3)
        forks.append((ev["post_fork"] - ev["pre_fork"]) * 1e3)
    return boots, forks, problems


def shrink_to(server, count, times, timeout=15.0):
    """TTOU `times` times, then waits until the server has `count` processes below its master."""
    for _ in range(times):
        os.kill(server.proc.pid, signal.SIGTTOU)
        time.sleep(0.05)
    return wait_until(lambda: len(descendants(server.proc.pid)) <= count, timeout)


# Log lines of the workers TTIN, TTOU and HUP start and stop (Gunicorn warns about the SIGTERM).
SPAWN_AND_RETIRE = re.compile(r"Booting worker|Worker with pid \d+ was terminated due to signal 15")


class BootMeasurement(Measurement):
    """The worker-boot scenario's measurement for bench/run (see the module docstring)."""

    expected_log = SPAWN_AND_RETIRE

    def measure(self, server, scenario, args, rep):
        log = server.env["BENCH_HOOK_LOG"]
        waited = quiet(args)
        before = len(descendants(server.proc.pid))
        ages = []
        for _ in range(SPAWNS):
            age = spawn_one(server, log)
            if age is None:
                break
            ages.append(age)
            time.sleep(0.1)        # let the new worker settle before the next fork
        boots, forks, problems = boot_times(read_hook_log(log), ages)
        if len(ages) < SPAWNS:
            problems.append("TTIN %d: no new worker ran post_worker_init within 15 s"
                            % (len(ages) + 1))
        shrunk = shrink_to(server, before, len(ages))
        r = {"boot_ms": spread("boot_ms", boots)["boot_ms"], "boot_ms_all": boots,
             "fork_ms": spread("fork_ms", forks)["fork_ms"], "fork_ms_all": forks, "ages": ages, "problems": problems, "shrunk_back": shrunk, "quiet_wait_s": waited,
             "server_alive": server.proc.poll() is None}
        print("[%s] %-8s run %d/%d: boot (pre_fork -> post_worker_init) median %s ms of %s; "
              "fork (pre_fork -> post_fork) %s ms%s"
              % (scenario.name, server.name, rep, args.repeat, fmt(r["boot_ms"], "%.1f"),
                 " ".join("%.1f" % b for b in boots), fmt(r["fork_ms"], "%.1f"),
                 "".join("  PROBLEM: %s" % p for p in problems)))
        return r

    def summarize(self, runs, scenario, args):
        boots = [b for r in runs for b in r["boot_ms_all"]]
        forks = [f for r in runs for f in r["fork_ms_all"]]
        s = spread("boot_ms", boots)
        s.update({"fork_ms": spread("fork_ms", forks)["fork_ms"], "spawns": len(boots),
                  "problems": [p for r in runs for p in r["problems"]], "runs": len(runs)})
        return s

    def notes(self, name, summary, scenario):
        return ["%s: %s" % (name, p) for p in summary["problems"][:5]]

    def print_table(self, scenario, result, args):
        print()
        print("== %s: %s (%d TTIN per run, %d run(s), median of all workers)"
              % (scenario.name, scenario.description, SPAWNS, result["repeat"]))
        rows = [[name, fmt(s["boot_ms"], "%.1f ms"),
                 fmt_range(s["boot_ms_min"], s["boot_ms_max"], "%.1f"),
                 fmt(s["fork_ms"], "%.1f ms"), s["spawns"], len(s["problems"])]
                for name, s in summaries(result)]
        print_rows(["server", "boot", "(min-max)", "of which fork", "workers", "problems"], rows)


def poll_new_pid(server, old, timeout=30.0):
    """Requests PIDs (a new connection each) until one not in old answers.  Returns the seconds
    until then (None if no new worker answered within timeout) and counts: requests, failed
    ones, and the longest a single request took (a gap in which no worker accepts shows there)."""
    polls = {"requests": 0, "failed": 0, "longest_s": 0.0}
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        polls["requests"] += 1
        sent = time.monotonic()
        try:
            status, body = server.get(timeout=1.0)
            answered = status == 200 and int(body) not in old
            polls["failed"] += status != 200
        except (OSError, ValueError):
            answered = False
            polls["failed"] += 1
        polls["longest_s"] = max(polls["longest_s"], time.monotonic() - sent)
        if answered:
            return time.monotonic() - t0, polls
    return None, polls


class HupMeasurement(Measurement):
    """The hup scenario's measurement for bench/run (see the module docstring)."""

    expected_log = SPAWN_AND_RETIRE

    def measure(self, server, scenario, args, rep):
        waited = quiet(args)
        old = set(descendants(server.proc.pid))
        affinity = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {args.wrk_cpu})      # the polling client runs where wrk would
        try:
            sent = time.monotonic()
            os.kill(server.proc.pid, signal.SIGHUP)
            seconds, polls = poll_new_pid(server, old)
        finally:
            os.sched_setaffinity(0, affinity)
        gone = wait_gone(old, 30.0)
        r = {"hup_ms": seconds * 1e3 if seconds is not None else None,
             "failed_requests": polls["failed"], "requests": polls["requests"],
             "longest_request_ms": polls["longest_s"] * 1e3, "old_workers": sorted(old),
             "old_workers_exited_ms": (time.monotonic() - sent) * 1e3 if gone else None,
             "quiet_wait_s": waited, "server_alive": server.proc.poll() is None}
        print("[%s] %-8s run %d/%d: HUP -> first answer from a new worker %s ms (%d requests, "
              "%d failed, the longest %.1f ms); old workers gone after %s ms"
              % (scenario.name, server.name, rep, args.repeat, fmt(r["hup_ms"], "%.1f"),
                 r["requests"], r["failed_requests"], r["longest_request_ms"],
                 fmt(r["old_workers_exited_ms"], "%.0f")))
        return r

    def summarize(self, runs, scenario, args):
        s = spread("hup_ms", [r["hup_ms"] for r in runs])
        s.update({"failed_requests": sum(r["failed_requests"] for r in runs),
                  "no_new_worker": sum(1 for r in runs if r["hup_ms"] is None),
                  "longest_request_ms": max(r["longest_request_ms"] for r in runs),
                  "old_workers_exited_ms": median_of(runs, "old_workers_exited_ms"),
                  "runs": len(runs)})
        return s

    def notes(self, name, summary, scenario):
        out = []
        if summary["failed_requests"]:
            out.append("%s: %d request(s) failed around the HUPs"
                       % (name, summary["failed_requests"]))
        if summary["no_new_worker"]:
            out.append("%s: no new worker answered within 30 s of %d HUP(s)"
                       % (name, summary["no_new_worker"]))
        return out

    def print_table(self, scenario, result, args):
        print()
        print("== %s: %s (%d run(s), medians)"
              % (scenario.name, scenario.description, result["repeat"]))
        rows = [[name, fmt(s["hup_ms"], "%.1f ms"),
                 fmt_range(s["hup_ms_min"], s["hup_ms_max"], "%.1f"),
                 s["failed_requests"], fmt(s["longest_request_ms"], "%.1f ms"),
                 fmt(s["old_workers_exited_ms"], "%.0f ms")]
                for name, s in summaries(result)]
        print_rows(["server", "HUP -> new worker", "(min-max)", "failed requests",
                    "longest request", "old workers gone"], rows)
