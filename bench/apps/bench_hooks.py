# A Gunicorn-style configuration file (-c bench_hooks.py) for bench/run's worker-boot scenario:
# only server hooks, which append "EVENT AGE PID TIME" lines to $BENCH_HOOK_LOG. pre_fork runs in
# the master right before the fork, post_fork in the new worker right after it, post_worker_init
# when the worker is ready to serve (the app, preloaded, already imported); worker.age pairs the
# lines of one worker. time.time() is comparable across the processes.
import os
import time


def _record(event, worker):
    line = "%s %s %d %.6f\n" % (event, getattr(worker, "age", "-"), os.getpid(), time.time())
    with open(os.environ["BENCH_HOOK_LOG"], "a") as f:
        f.write(line)


def pre_fork(server, worker):
    _record("pre_fork", worker)


def post_fork(server, worker):
    _record("post_fork", worker)


def post_worker_init(worker):
    _record("post_worker_init", worker)
