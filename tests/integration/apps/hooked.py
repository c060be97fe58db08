# Server hooks that record each call (hook name, the process it ran in, and what it was given) to the file
# named by $HOOK_LOG, for test_hooks.py.
import os


def _record(*fields):
    with open(os.environ["HOOK_LOG"], "a") as f:
        f.write(" ".join(str(x) for x in fields) + "\n")


def on_starting(server):
    _record("on_starting", os.getpid(), server.pid, server.cfg.workers)


def on_reload(server):
    _record("on_reload", os.getpid(), server.pid)


def when_ready(server):
    server.log.info("when_ready ran")
    _record("when_ready", os.getpid(), server.pid)


def pre_fork(server, worker):
    _record("pre_fork", os.getpid(), worker.age)


def post_fork(server, worker):
    _record("post_fork", os.getpid(), worker.pid, worker.ppid, worker.age)


def post_worker_init(worker):
    _record("post_worker_init", os.getpid(), worker.pid)


def worker_int(worker):
    _record("worker_int", os.getpid(), worker.pid)


def pre_request(worker, req):
    _record("pre_request", os.getpid(), req.method, req.path)


def post_request(worker, req, environ, resp):
    _record("post_request", os.getpid(), req.path, resp.status_code)


def child_exit(server, worker):
    _record("child_exit", os.getpid(), worker.pid, worker.age)


def worker_exit(server, worker):
    _record("worker_exit", os.getpid(), worker.pid)


def nworkers_changed(server, new_value, old_value):
    _record("nworkers_changed", os.getpid(), new_value, old_value)


def on_exit(server):
    _record("on_exit", os.getpid())


def app(environ, start_response):
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]
