# A WSGI app that runs one CPython test module (Debian's libpython3.11-testsuite) inside the request's greenlet of
# gcorn's async worker, under gcorn.monkey's patches, and answers with the results as JSON. Driven by run.py.
import io
import json
import sys
import threading
import time
import traceback
import unittest
from urllib.parse import parse_qs

from gcorn import green

PYTHON = "/usr/bin/python3"  # the tests start child interpreters through sys.executable


def _expectations(path):
    """{test id or class id: (kind, reason)} from the expected-results list."""
    entries = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            test_id, kind, reason = line.split(None, 2)
            entries[test_id] = (kind, reason)
    return entries


def _flatten(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from _flatten(t)
        else:
            yield t


def _short_id(test):
    return test.id().removeprefix("test.")


class TestHung(Exception):
    """A test still waiting after TEST_TIMEOUT: raised into it (gcorn.green.Timeout) so the module goes on."""


TEST_TIMEOUT = 120  # seconds; the suite's own waits are at most support.LONG_TIMEOUT (5 min) in rare tests


def _bounded(run, test_id):
    """test.run (setUp, the test, tearDown, cleanups) raising TestHung into whatever waits past TEST_TIMEOUT."""
    def bounded(*args, **kwargs):
        with green.Timeout(TEST_TIMEOUT, TestHung("%s still waiting after %ss" % (test_id, TEST_TIMEOUT))):
            return run(*args, **kwargs)
    return bounded


def _apply(suite, entries):
    """Marks listed tests (`skip` never runs, `fail` must fail: an unexpected success is an error) and bounds the
    waiting of every test."""
    for test in _flatten(suite):
        test_id = _short_id(test)
        class_id = test_id.rsplit(".", 1)[0]
        if class_id in entries and entries[class_id][0] == "skip":
            cls = type(test)
            cls.__unittest_skip__, cls.__unittest_skip_why__ = True, "gcorn: " + entries[class_id][1]
            continue
        test.run = _bounded(test.run, test_id)
        name = getattr(test, "_testMethodName", None)
        kind, reason = entries.get(test_id, (None, None))
        if kind is None or name is None:
            continue
        method = getattr(test, name)
        if kind == "skip":
            def skipped(reason=reason):
                raise unittest.SkipTest("gcorn: " + reason)
            setattr(test, name, skipped)
        else:
            def failing(*args, method=method, **kwargs):
                return method(*args, **kwargs)
            failing.__unittest_expecting_failure__ = True
            setattr(test, name, failing)


class _Result(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.passed = []

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed.append(test)


def _in_thread(fn, *args):
    """fn(*args) in a threading.Thread (a greenlet under the patch), so the tests see an ordinary non-daemon
    thread as current_thread(), not the request's dummy one."""
    out = {}
    def run():
        try:
            out["value"] = fn(*args)
        except BaseException as e:
            out["error"] = e
    t = threading.Thread(target=run, name="stdlib-tests", daemon=False)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def run_module(module, expected_path, log_path, resources=()):
    from test import support
    support.use_resources = list(resources)  # as regrtest -u: by default no network, cpu-hungry or gui tests
    sys.executable = sys._base_executable = PYTHON
    if not sys.argv or not sys.argv[0]:
        sys.argv = [PYTHON]
    suite = unittest.defaultTestLoader.loadTestsFromName("test." + module)
    _apply(suite, _expectations(expected_path))
    with open(log_path, "w", buffering=1, encoding="utf-8") as log:
        runner = unittest.TextTestRunner(stream=log, verbosity=2, resultclass=_Result)
        start = time.monotonic()
        result = _in_thread(runner.run, suite)
        elapsed = time.monotonic() - start
    describe = lambda pairs: [[_short_id(t), text] for t, text in pairs]
    return {
        "module": module,
        "seconds": round(elapsed, 1),
        "run": result.testsRun,
        "passed": [_short_id(t) for t in result.passed],
        "failures": describe(result.failures),
        "errors": describe(result.errors),
        "skipped": describe(result.skipped),
        "expected_failures": describe(result.expectedFailures),
        "unexpected_successes": [_short_id(t) for t in result.unexpectedSuccesses],
    }


def app(environ, start_response):
    if environ["PATH_INFO"] != "/run":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ready"]
    q = {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"]).items()}
    try:
        resources = [r for r in q.get("resources", "").split(",") if r]
        body = json.dumps(run_module(q["module"], q["expected"], q["log"], resources))
        status = "200 OK"
    except BaseException:
        body, status = traceback.format_exc(), "500 Internal Server Error"
    data = body.encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
