"""What bench/run reads from /proc: process trees, their CPU time and memory, and how busy the CPUs are."""

import os
import resource
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


def wait_gone(pids, timeout):
    """Waits until none of pids is alive (at most timeout seconds); True if they all went."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # One read per pid: a process that exits between two reads would read as None the second time.
        if not any((st := proc_stat(pid)) is not None and st[0] != "Z" for pid in pids):
            return True
        time.sleep(0.01)
    return False


def cpu_ticks(cpu):
    """Tick counters of one CPU from /proc/stat: user nice system idle iowait irq softirq steal."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu%d " % cpu):
                return [int(x) for x in line.split()[1:9]]
    raise ValueError("cpu%d not in /proc/stat" % cpu)


def cpus_ticks(cpus):
    """cpu_ticks() summed over a group of CPUs (those an unpinned process tree floats over)."""
    return [sum(column) for column in zip(*(cpu_ticks(c) for c in cpus))]


def core_usage(before, after):
    """Fractions of a CPU's time between two cpu_ticks() samples: busy (anything but idle and
    iowait), irq (hard + soft interrupts, here mostly loopback network processing) and steal
    (time the hypervisor gave to another VM)."""
    d = [b - a for a, b in zip(before, after)]
    total = sum(d) or 1
    return {"busy": 1.0 - (d[3] + d[4]) / total, "irq": (d[5] + d[6]) / total,
            "steal": d[7] / total}


class CoreWatch:
    """How busy the server's and the client's CPUs were between construction and stop(), and
    how much of that other processes took.  Unpinned, both groups are every CPU and both
    processes are our own load on them."""

    def __init__(self, server_cpus, client_cpus):
        self.groups = (server_cpus, client_cpus)
        self.before = [cpus_ticks(g) for g in self.groups]

    def stop(self):
        self.after = [cpus_ticks(g) for g in self.groups]

    def usage(self, server_util, client_util):
        """[server CPUs, client CPUs]: core_usage() dicts plus "foreign", the busy fraction our
        processes did not use (server_util, client_util: their CPU seconds per second)."""
        usage = [core_usage(b, a) for b, a in zip(self.before, self.after)]
        shared = self.groups[0] == self.groups[1]
        own = (server_util + client_util,) * 2 if shared else (server_util, client_util)
        for u, mine, group in zip(usage, own, self.groups):
            u["foreign"] = max(0.0, u["busy"] - mine / len(group))
        return usage


def children_cpu_seconds():
    """CPU seconds of our reaped children so far (taskset execs what it pins: wrk, curl)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


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


def quiet(args):
    """wait_for_quiet() on the server and wrk CPUs, with bench/run's --noise and
    --max-quiet-wait; returns the seconds waited."""
    return wait_for_quiet([args.server_cpu, args.wrk_cpu], args.noise, args.max_quiet_wait)


def free_port():
    """A port that is free right now (the kernel picks it; tiny race until the server binds it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]



def vm_kib(pid, field):
    """A size field of /proc/PID/status in KiB (VmRSS: resident now, VmHWM: the peak resident
    size), or None if the process is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return None


def reset_peak_rss(pid):
    """Resets the process's VmHWM to its current RSS (5 written to /proc/PID/clear_refs, Linux
    4.0 and later), so the next VmHWM is the peak since now; False where that is not allowed."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def open_files_preexec(n):
    """A subprocess preexec_fn that gives the child RLIMIT_NOFILE n (soft and hard), or its hard
    limit where raising that is not allowed (no CAP_SYS_RESOURCE); None for n = 0."""
    if not n:
        return None

    def preexec():
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (n, max(n, hard)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))
    return preexec


def open_files_limit(pid):
    """The soft RLIMIT_NOFILE of a running process (from /proc/PID/limits), or None."""
    try:
        with open("/proc/%d/limits" % pid) as f:
            for line in f:
                if line.startswith("Max open files"):
                    return int(line.split()[3])
    except (OSError, ValueError):
        pass
    return None


def on_cpu(cpu, argv):
    """argv pinned to one CPU with taskset (which execs it: the PID stays argv's), or unchanged
    for cpu None."""
    return argv if cpu is None else ["taskset", "-c", str(cpu)] + list(argv)
