# gcorn.green, the public fan-out API, used from requests served by the real binary's async worker (apps/greenapps.py).
import json

import pytest

from conftest import concurrent_gets, peak


@pytest.fixture
def green_server(gcorn):
    return gcorn("greenapps:app", "-k", "async")


def call(server, case, **args):
    query = "&".join("%s=%s" % kv for kv in args.items())
    with server.get("/%s?%s" % (case, query), timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture
def slow_upstream(upstream):
    """A local HTTP server answering /<x> with <x> after 0.3 s."""
    return upstream(0.3)


def test_fanout_to_three_upstreams_runs_them_at_once(green_server, slow_upstream):
    out = call(green_server, "fanout", upstream=slow_upstream.url())
    assert out["values"] == ["a", "b", "c"]
    assert slow_upstream.peak == 3  # the upstream saw the three calls side by side


def test_fanout_under_concurrent_requests(green_server, slow_upstream):
    responses = concurrent_gets(green_server.port, "/fanout?upstream=" + slow_upstream.url(), 30)
    assert all(b'"values": ["a", "b", "c"]' in r for r in responses), responses[:1]
    assert peak(green_server) >= 5 and slow_upstream.peak >= 15  # requests and their fan-outs overlapped


def test_spawn_get_and_spawn_later(green_server):
    out = call(green_server, "spawn_and_get")
    assert out["value"] == 5 and out["dead"]
    assert out["successful"] == [True, False]
    assert out["raised"] == "ZeroDivisionError"
    assert out["later_delay"] > 0.08  # spawn_later waited (an upper bound would race CI's load)
    assert "ZeroDivisionError" in green_server.log()  # a failed greenlet is logged, as gevent prints it


def test_joinall_timeout_and_kill(green_server):
    out = call(green_server, "joinall_timeout")
    assert out["done"] == 1 and out["seconds"] > 0.15  # joinall returned at its timeout, with the slow one left
    assert out["killed_value"] == "GreenletExit" and out["dead"]


def test_timeout_context_manager_and_exception(green_server):
    out = call(green_server, "timeouts")
    assert out["raised"] == "0.1 seconds"
    assert out["silent"] and "not_reached" not in out
    assert out["custom"] == "custom"
    assert out["pending_after_exit"] is False
    assert out["asyncresult_timeout"]
    with green_server.get("/hello") as r:  # nothing fired later into the pooled greenlet
        assert json.loads(r.read()) == "hello"


def test_event_and_async_result(green_server):
    out = call(green_server, "events")
    assert out == {"order": [0, 1, 2], "result": "payload", "failed_raised": True, "wait_timeout": False}


def test_queue_bounded_producer_consumer(green_server):
    out = call(green_server, "queues")
    assert out == {"got": list(range(10)), "timed_out": True, "was_full": True}


def test_pool_and_semaphore_bound_concurrency(green_server):
    out = call(green_server, "semaphores_and_pools")
    assert out["squares"] == [i * i for i in range(12)]
    assert out["pool_peak"] == 3 and out["semaphore_peak"] == 2
    assert out["unordered"] == [i * i for i in range(6)]
    assert out["over_release"] and out["free"] == 3


def test_kill_blocked_greenlet_and_wait_read(green_server):
    out = call(green_server, "kill_blocked")
    assert out == {"killed": "GreenletExit", "woken": True, "drained": "x", "timeout_error": "TimeoutError"}


def test_interrupting_pool_lock_and_socket_waits(green_server):
    import errno
    out = call(green_server, "interruptions")
    assert out == {"pool_interrupted": True, "pool_again": True, "lock": ["impatient timed out", "patient"],
                   "closed": errno.EBADF}
    assert "Segmentation" not in green_server.log()
