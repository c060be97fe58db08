# gcorn.monkey: the patched standard library inside requests of the real binary's async worker
# (apps/greenapps.py), and CPython's own test modules run under the patch (tests/stdlib/run.py).
import importlib.util
import json
import os
from pathlib import Path

import pytest

from conftest import concurrent_gets, peak

STDLIB = Path(__file__).resolve().parent.parent / "stdlib"


@pytest.fixture
def green_server(gcorn):
    def start(*args):
        return gcorn("greenapps:app", "-k", "async", *args)
    return start


def call(server, case, **args):
    query = "&".join("%s=%s" % kv for kv in args.items())
    with server.get("/%s?%s" % (case, query), timeout=60) as r:
        return json.loads(r.read())


def all_ok(responses, text):
    bad = [r for r in responses if not (r.startswith(b"HTTP/1.1 200") and text in r)]
    assert not bad, bad[:1]


def test_patch_all_is_complete_and_idempotent(green_server):
    out = call(green_server(), "patched")
    assert out == {
        "idempotent": True, "socket": True, "ssl": True, "sleep": True, "epoll_withdrawn": True,
        "default_selector": "PollSelector", "lock": True, "rlock": "_RLock",
        "simple_queue": "_PySimpleQueue", "popen": "gcorn._subprocess", "all_patched": True,
        "psycopg2": out["psycopg2"] if out["psycopg2"] is None else True,
    }


def test_monkey_patch_false_leaves_the_stdlib_alone(gcorn):
    server = gcorn("greenapps:app", "-k", "async", config="monkey_patch = false\n")
    out = call(server, "patched")  # the app's own patch_all() call still patches, on request
    assert out["idempotent"] is False


def test_threads_in_a_request_are_greenlets(green_server):
    server = green_server()
    out = call(server, "threads")
    assert out["results"] == ["0", "1", "2", "item"] and out["joined"]
    assert out["sleepers_peak"] == 3, out  # three 0.2 s sleepers side by side
    assert out["event"] and out["distinct_ident"]
    all_ok(concurrent_gets(server.port, "/threads", 50), b'"joined": true')
    assert peak(server) >= 10


def test_worker_stops_with_a_thread_still_running(green_server):
    server = green_server("--graceful-timeout", "2")
    assert call(server, "background") == {"started": True}
    assert server.stop() == 0  # the sleeping greenlet-thread is killed; threading's shutdown does not wait on it
    assert "Worker exiting" in server.log() and "did not stop in time" not in server.log()
    assert "Segmentation" not in server.log() and "Traceback" not in server.log()


def test_select_poll_and_selectors_yield(green_server):
    server = green_server()
    out = call(server, "selecting")
    assert out["counts"] == [1, 1, 1] and out["timed_out"]
    all_ok(concurrent_gets(server.port, "/selecting?s=0.2", 50), b'"counts": [1, 1, 1]')
    assert peak(server) >= 10  # the waits overlapped (serially: one request at a time)


def test_subprocess_waits_yield(green_server):
    server = green_server()
    out = call(server, "subprocesses")
    assert out["values"] == ["PING", "hi", 0, True]
    all_ok(concurrent_gets(server.port, "/subprocesses?s=0.5", 20), b'"PING"')
    assert peak(server) >= 5  # the children's waits overlapped (serially: one request at a time)


@pytest.mark.parametrize("kind", ["lock", "urllib3", "sqlalchemy"])
def test_200_requests_contend_on_a_locked_pool_of_5(green_server, upstream, kind):
    if kind != "lock":
        pytest.importorskip(kind)
    pooled = upstream(0.02, b"pooled")
    server = green_server()
    responses = concurrent_gets(server.port, "/pooled?kind=%s&upstream=%s" % (kind, pooled.url()), 200, timeout=90)
    all_ok(responses, b'"body": "' + (b"1" if kind == "sqlalchemy" else b"pooled"))
    assert peak(server) > 5  # more requests in flight than connections: the others waited for one, cooperatively
    if kind != "sqlalchemy":
        assert pooled.peak <= 5  # ...and the pool really bounded the upstream calls


def test_requests_to_https_upstream_with_own_ca(green_server, https_upstream):
    pytest.importorskip("requests")
    secret, cafile = https_upstream(0.02, b"secret")
    server = green_server()
    url = secret.url("localhost", "https") + "/"
    assert call(server, "https", url=url, cafile=cafile) == {"body": "secret"}
    responses = concurrent_gets(server.port, "/https?url=%s&cafile=%s" % (url, cafile), 100)
    all_ok(responses, b'"body": "secret"')
    assert peak(server) >= 10 and secret.peak >= 5  # the TLS calls overlapped


# CPython's own tests, as gevent validates its patching: every result not in tests/stdlib/expected.txt fails here.
# (About 4 minutes in all; GCORN_SKIP_STDLIB=1 skips them.)
_spec = importlib.util.spec_from_file_location("gcorn_stdlib_run", STDLIB / "run.py")
stdlib_suite = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stdlib_suite)


@pytest.mark.parametrize("module", stdlib_suite.MODULES)
def test_cpython_suite_under_the_patch(module, tmp_path, monkeypatch):
    if os.environ.get("GCORN_SKIP_STDLIB"):
        pytest.skip("GCORN_SKIP_STDLIB is set")
    testdir, name = Path("/usr/lib/python3.11/test"), module.split(".")[0]
    if not ((testdir / (name + ".py")).exists() or (testdir / name).is_dir()):
        pytest.skip("needs Debian's libpython3.11-testsuite")
    monkeypatch.setattr(stdlib_suite, "GCORN", os.environ.get("GCORN_BIN") or stdlib_suite.GCORN)
    result = stdlib_suite.run_module(module, tmp_path)
    print(stdlib_suite.summary(result))
    problems = stdlib_suite.problems(result)
    assert not problems, "\n".join(problems)
