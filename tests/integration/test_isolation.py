# Concurrency isolation under the async worker: Flask's request/g and Django's request and thread-local
# translation state stay per request while many requests sleep cooperatively at once.
import json
import threading
import time

import pytest


def concurrent(server, paths):
    results, errors = {}, []

    def fetch(p):
        try:
            with server.get(p, timeout=20) as r:
                results[p] = json.loads(r.read())
        except Exception as e:  # recorded, asserted below
            errors.append(repr(e))

    threads = [threading.Thread(target=fetch, args=(p,)) for p in paths]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors, time.monotonic() - start


def test_flask_request_and_g_are_per_request(gcorn):
    server = gcorn("isolation_flask:app", "-k", "async")
    paths = ["/iso?v=%d" % i for i in range(20)]
    results, errors, elapsed = concurrent(server, paths)
    assert errors == []
    for p in paths:
        v = p.split("=")[1]
        assert results[p] == {"arg": v, "g": v}
    assert elapsed < 2  # concurrent: 20 x 0.2 s would be 4 s


def test_django_request_and_translation_are_per_request(gcorn):
    server = gcorn("djangoproj.wsgi:application", "-k", "async")
    langs = ["de", "fr", "es", "it", "nl", "pt", "pl", "sv", "da", "fi"]
    paths = ["/isolation/?lang=%s" % l for l in langs]
    results, errors, elapsed = concurrent(server, paths)
    assert errors == []
    for p, lang in zip(paths, langs):
        assert results[p] == {"lang": lang, "arg": lang}
    assert elapsed < 1.8
