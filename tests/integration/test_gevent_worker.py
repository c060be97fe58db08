# gevent's hub on gcorn's reactor (issue 15): apps written for Gunicorn's gevent worker, under `-k gevent`. Each
# test decides by what the server observed (requests in flight at once, greenlets inside a wait at once).
import json

import pytest

from conftest import concurrent_gets, peak, split_response
from test_services import postgres_port  # noqa: F401 (the fixture)

pytest.importorskip("gevent")


def body_of(raw):
    status, _, body = split_response(raw)
    assert status.startswith("HTTP/1.1 200"), raw
    return json.loads(body)


def get_json(server, path):
    with server.get(path, timeout=60) as r:
        return json.loads(r.read())


@pytest.fixture
def gevent_app(gcorn):
    return gcorn("gevent_api:app", "-k", "gevent")


def test_the_worker_hub_is_geventss_on_gcorns_loop(gevent_app):
    assert get_json(gevent_app, "/loop") == {"loop": "gcorn.gevent._loop"}


def test_spawn_joinall_overlaps_inside_and_across_requests(gevent_app):
    peak(gevent_app)
    responses = concurrent_gets(gevent_app.port, "/spawn", 4)
    assert [body_of(r) for r in responses] == [{"inner_peak": 3}] * 4  # three greenlets waited at once in each
    assert peak(gevent_app) == 4  # and the four requests ran at once


@pytest.mark.parametrize("path, expected", [
    ("/pool", {"inner_peak": 3, "results": list(range(9))}),
    ("/queue", {"order": [2, 1, 0]}),
    ("/timeout", {"timed_out": True}),
    ("/event", {"woken": [0, 1, 2]}),
    ("/semaphore", {"inner_peak": 2}),
    ("/local", {"values": [0, 1, 2]}),
    ("/subprocess", {"output": "from a child"}),
])
def test_gevent_api_inside_a_request(gevent_app, path, expected):
    peak(gevent_app)
    assert [body_of(r) for r in concurrent_gets(gevent_app.port, path, 3)] == [expected] * 3
    assert peak(gevent_app) == 3


def test_gevent_greenlets_park_in_gcorns_patched_sockets(gevent_app, upstream):
    slow = upstream(0.3, b"slow")
    assert get_json(gevent_app, "/fetch?" + slow.url() + "/x") == {"bodies": ["slow"] * 3}
    assert slow.peak == 3  # the three greenlets' calls were in the service at once


@pytest.fixture
def patched_app(gcorn):
    return gcorn("gevent_patched:app", "-k", "gevent")


def test_an_app_that_calls_gevent_monkey_patch_all(patched_app):
    peak(patched_app)
    assert [body_of(r) for r in concurrent_gets(patched_app.port, "/sleep", 4)] == [{"slept": True}] * 4
    assert peak(patched_app) == 4
    assert get_json(patched_app, "/threads") == {"inner_peak": 3}  # threads are greenlets on the hub
    patched = get_json(patched_app, "/patched")
    assert all(patched.values()), patched  # gevent.monkey.is_module_patched tells the truth


def test_patched_socket_and_urllib_to_a_slow_service(patched_app, upstream):
    slow = upstream(0.3, b"slow")
    peak(patched_app)
    url = slow.url() + "/x"
    responses = concurrent_gets(patched_app.port, "/urllib?url=" + url, 4)
    assert [body_of(r) for r in responses] == [{"body": "slow"}] * 4
    assert peak(patched_app) == 4 and slow.peak == 4
    responses = concurrent_gets(patched_app.port, "/socket?host=127.0.0.1&port=%d" % slow.port, 4)
    assert [body_of(r) for r in responses] == [{"reply": "slow"}] * 4


def test_patched_ssl_to_an_https_service(patched_app, https_upstream):
    secure, cafile = https_upstream(0.2, b"secret")
    peak(patched_app)
    url = secure.url("localhost", "https") + "/"
    responses = concurrent_gets(patched_app.port, "/urllib?url=%s&cafile=%s" % (url, cafile), 4)
    assert [body_of(r) for r in responses] == [{"body": "secret"}] * 4
    assert peak(patched_app) == 4 and secure.peak == 4


REPORTS_PATCHING = """
import json, sys, time

def app(environ, start_response):
    monkey = sys.modules.get("gevent.monkey")
    body = json.dumps({
        "socket_patched": bool(monkey and monkey.is_module_patched("socket")),
        "sleep": time.sleep.__module__,
        "loop": type(sys.modules["gevent"].get_hub().loop).__module__ if "gevent" in sys.modules else None,
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
"""


def test_monkey_patch_all_in_a_gunicorn_conf_py_reaches_the_workers(gcorn, tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text("from gevent import monkey\nmonkey.patch_all()\nworker_class = 'gevent'\n")
    server = gcorn(None, "-c", str(tmp_path / "gunicorn.conf.py"), source=REPORTS_PATCHING)
    assert get_json(server, "/") == {"socket_patched": True, "sleep": "gevent.hub", "loop": "gcorn.gevent._loop"}


def test_psycogreen_gevent_queries_overlap(patched_app, postgres_port):
    pytest.importorskip("psycogreen")
    peak(patched_app)
    responses = concurrent_gets(patched_app.port, "/pg_sleep?port=%d" % postgres_port, 4)
    backends = {body_of(r)["backend"] for r in responses}
    assert len(backends) == 4 and peak(patched_app) == 4  # four pg_sleeps on four connections, at once

