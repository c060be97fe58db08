#!/usr/bin/python3
"""gevent on gcorn's loop vs gevent's default (libev) loop, same run, same CPU (issue 15).

Each microbenchmark runs in a fresh /usr/bin/python3 process per loop, alternating loops, pinned to one CPU
(--cpu, default 0), and reports operations per second (median of --reps runs) and the ratio gcorn/libev:

  spawn_join   gevent.spawn of a no-op greenlet and join, in batches of 100
  sleep0       gevent.sleep(0), the hub round trip every cooperative yield makes
  timer        gevent.sleep(0.0001): a timer watcher started, fired and stopped

Run from a build tree:  bench/gevent_loop.py [--build build] [--reps 5]
A benchmark, not a test: it never asserts.
"""
import argparse
import os
import statistics
import subprocess
import sys

PROGRAM = r"""
import sys, time, gevent
kind, n = sys.argv[1], int(sys.argv[2])
def noop():
    pass
t0 = time.perf_counter()
if kind == "spawn_join":
    for _ in range(n // 100):
        gevent.joinall([gevent.spawn(noop) for _ in range(100)])
elif kind == "sleep0":
    for _ in range(n):
        gevent.sleep(0)
elif kind == "timer":
    for _ in range(n):
        gevent.sleep(0.0001)
elapsed = time.perf_counter() - t0
print(n / elapsed, type(gevent.get_hub().loop).__module__)
"""

COUNTS = {"spawn_join": 200000, "sleep0": 200000, "timer": 20000}


def run(kind, loop, args):
    env = dict(os.environ)
    env.pop("GEVENT_LOOP", None)
    if loop == "gcorn":
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["GEVENT_LOOP"] = "gcorn.gevent.loop"
        env["PYTHONPATH"] = os.pathsep.join([os.path.join(root, args.build, "src"), os.path.join(root, "python")])
    out = subprocess.run(["taskset", "-c", str(args.cpu), "/usr/bin/python3", "-c", PROGRAM, kind,
                          str(COUNTS[kind])], env=env, capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), out[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--cpu", type=int, default=0)
    args = parser.parse_args()
    print("pinned to CPU %d, %d repetitions alternating the loops; ops/s medians" % (args.cpu, args.reps))
    print("%-12s %14s %14s %8s" % ("benchmark", "libev", "gcorn", "ratio"))
    for kind in COUNTS:
        results = {"libev": [], "gcorn": []}
        for _ in range(args.reps):
            for loop in ("libev", "gcorn"):
                rate, module = run(kind, loop, args)
                if loop == "gcorn" and module != "gcorn.gevent._loop":
                    sys.exit("gevent did not use gcorn's loop: %s" % module)
                results[loop].append(rate)
        libev, gcorn = statistics.median(results["libev"]), statistics.median(results["gcorn"])
        print("%-12s %14.0f %14.0f %7.2fx" % (kind, libev, gcorn, gcorn / libev))


if __name__ == "__main__":
    main()
