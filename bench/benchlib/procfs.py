"""What bench/run reads from /proc: process trees, their CPU time and memory, and how busy the CPUs are."""

import os
import socket
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_stat(pid):
    """The fields of /proc/PID/stat after the command name, or None if the process is gone.

    The command name (field 2) is in parentheses and may contain spaces, so we split after the
    last ')'.  The returned list starts at field 3 (state): field N is at index N - 3.
    """
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rfind(")") + 2:].split()


def descendants(root):
    """PIDs of all live descendants of root (children, grandchildren, ...), from /proc/*/stat."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = proc_stat(int(entry))
        if st is not None:
            children.setdefault(int(st[1]), []).append(int(entry))   # field 4: ppid
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return sorted(out)


def tree_cpu_seconds(master):
    """CPU seconds (user + system) used so far by master and its whole process tree.

    Sums utime + stime (fields 14, 15, in clock ticks) of the master and of every live
    descendant.  Also adds the master's cutime + cstime (fields 16, 17): the time of children it
    has already reaped.  Without those, a worker that dies and is replaced during a run would take
    its CPU time with it and the run would look cheaper than it was.  (A child moves from "live"
    to "reaped" atomically as the master waits for it, so it is never counted twice.)
    Returns (seconds, worker pids), the worker pids to detect restarts.
    """
    st = proc_stat(master)
    if st is None:
        return None, []
    ticks = int(st[11]) + int(st[12]) + int(st[13]) + int(st[14])
    kids = descendants(master)
    for pid in kids:
        kst = proc_stat(pid)
        if kst is not None:
            ticks += int(kst[11]) + int(kst[12])
    return ticks / CLK_TCK, kids


def cpu_ticks(cpu):
    """Tick counters of one CPU from /proc/stat: user nice system idle iowait irq softirq steal."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu%d " % cpu):
                return [int(x) for x in line.split()[1:9]]
    raise ValueError("cpu%d not in /proc/stat" % cpu)


def core_usage(before, after):
    """Fractions of a CPU's time between two cpu_ticks() samples: busy (anything but idle and
    iowait), irq (hard + soft interrupts, here mostly loopback network processing) and steal
    (time the hypervisor gave to another VM)."""
    d = [b - a for a, b in zip(before, after)]
    total = sum(d) or 1
    return {"busy": 1.0 - (d[3] + d[4]) / total, "irq": (d[5] + d[6]) / total,
            "steal": d[7] / total}


def wait_for_quiet(cpus, threshold, max_wait):
    """Waits until the pinned CPUs are nearly idle; returns the seconds waited.

    Another engineer's build or test suite on the same small machine would take CPU time from
    the server or from wrk and distort the run, so we wait for it to pass (up to max_wait).
    """
    if max_wait <= 0:
        return 0.0
    t0 = time.monotonic()
    while True:
        before = [cpu_ticks(c) for c in cpus]
        time.sleep(1.0)
        busy = [core_usage(b, cpu_ticks(c))["busy"] for b, c in zip(before, cpus)]
        waited = time.monotonic() - t0
        if max(busy) < threshold or waited >= max_wait:
            return waited


def free_port():
    """A port that is free right now (the kernel picks it; tiny race until the server binds it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

