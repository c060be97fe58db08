# Gunicorn's server hooks, configured in TOML ([hooks]) and on the command line (--hook).
import json
import os
import signal
import time

from test_arbiter import wait_until

ALL = ("on_starting", "on_reload", "when_ready", "pre_fork", "post_fork", "post_worker_init", "worker_int",
       "pre_request", "post_request", "child_exit", "worker_exit", "nworkers_changed", "on_exit")


def events(path):
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def names(path):
    return [e[0] for e in events(path)]


def test_every_hook_runs_where_gunicorn_runs_it(gcorn, tmp_path):
    log = tmp_path / "hooks.log"
    config = "workers = 1\n[hooks]\n" + "".join('%s = "hooked:%s"\n' % (h, h) for h in ALL)
    server = gcorn("hooked:app", config=config, env={"HOOK_LOG": str(log)})
    master = server.pid
    worker = server.worker_pids()[0]
    with server.get("/hello") as r:
        assert r.read() == b"ok"
    wait_until(lambda: ["post_request", str(worker), "/hello", "200"] in events(log))
    ev = {e[0]: e for e in events(log)}  # the last call of each hook
    assert ev["on_starting"][1:] == [str(master), str(master), "1"]
    assert ev["when_ready"][1] == str(master) and "when_ready ran" in server.log()
    assert ev["pre_fork"][1:] == [str(master), "1"]
    assert ev["post_fork"][1:] == [str(worker), str(worker), str(master), "1"]
    assert ev["post_worker_init"][1:] == [str(worker), str(worker)]
    assert ev["pre_request"][1:] == [str(worker), "GET", "/hello"]
    assert ev["post_request"][1:] == [str(worker), "/hello", "200"]

    # At boot (old value None, as Gunicorn's set-up), then on TTIN.
    assert [e for e in events(log) if e[0] == "nworkers_changed"][0][1:] == [str(master), "1", "None"]
    server.proc.send_signal(signal.SIGTTIN)
    wait_until(lambda: len([e for e in events(log) if e[0] == "nworkers_changed"]) == 2)
    assert [e for e in events(log) if e[0] == "nworkers_changed"][1][1:] == [str(master), "2", "1"]
    wait_until(lambda: len(server.worker_pids()) == 2)

    os.kill(worker, signal.SIGINT)  # a worker's fast stop runs worker_int first
    wait_until(lambda: "child_exit" in names(log))
    assert [str(worker), str(worker)] in [e[1:] for e in events(log) if e[0] == "worker_int"]
    assert [str(master), str(worker), "1"] in [e[1:] for e in events(log) if e[0] == "child_exit"]  # its real age

    server.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "on_reload" in names(log))
    time.sleep(0.5)
    assert server.stop() == 0
    final = names(log)
    assert "worker_exit" in final and final[-1] == "on_exit"


def test_hook_from_the_command_line_and_a_failing_hook(gcorn, tmp_path):
    log = tmp_path / "hooks.log"
    (tmp_path / "badhooks.py").write_text("def post_fork(server, worker):\n    raise RuntimeError('hook broke')\n")
    server = gcorn("hooked:app", "--hook", "pre_request=hooked:pre_request", "--hook", "post_fork=badhooks:post_fork",
                   env={"HOOK_LOG": str(log)})
    with server.get("/x") as r:
        assert r.read() == b"ok"  # a failing hook is logged, the worker serves on
    wait_until(lambda: "pre_request" in names(log))
    assert "Exception in post_fork hook" in server.log() and "hook broke" in server.log()


def test_unknown_hook_is_a_config_error():
    from conftest import run_gcorn
    r = run_gcorn("--hook", "pre_lunch=x:y", "hooked:app")
    assert r.returncode == 2 and "hooks" in r.stderr and "pre_lunch" in r.stderr


MODULES_APP = """
import json, sys

def app(environ, start_response):
    out = json.dumps(sorted(m for m in sys.modules if m.startswith("gcorn."))).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [out]
"""


def test_a_worker_without_hooks_leaves_the_hook_module_alone(gcorn, tmp_path):
    # gcorn._hooks would only find nothing to call: a worker without a hook never imports it (part of a boot).
    server = gcorn(None, source=MODULES_APP)
    with server.get("/") as r:
        modules = json.loads(r.read())
    assert "gcorn._hooks" not in modules and "gcorn._wsgi" in modules, modules
    # With one (here post_worker_init) it is there, and the hook runs.
    log = tmp_path / "hooks.log"
    server = gcorn("hooked:app", config='[hooks]\npost_worker_init = "hooked:post_worker_init"\n',
                   env={"HOOK_LOG": str(log)})
    wait_until(lambda: [e for e in events(log) if e[0] == "post_worker_init"])
