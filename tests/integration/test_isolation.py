# Concurrency isolation under the async worker: Flask's request/g and Django's request and thread-local
# translation state stay per request while many requests sleep cooperatively at once.
import json
import threading

import pytest

from conftest import peak


def concurrent(server, paths):
    results, errors = {}, []

    def fetch(p):
        try:
            with server.get(p, timeout=20) as r:
                results[p] = json.loads(r.read())
        except Exception as e:  # recorded, asserted below
            errors.append(repr(e))

    threads = [threading.Thread(target=fetch, args=(p,)) for p in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors, peak(server)


def test_flask_request_and_g_are_per_request(gcorn):
    server = gcorn("isolation_flask:app", "-k", "async")
    paths = ["/iso?v=%d" % i for i in range(20)]
    results, errors, overlapped = concurrent(server, paths)
    assert errors == []
    for p in paths:
        v = p.split("=")[1]
        assert results[p] == {"arg": v, "g": v}
    assert overlapped >= 2  # the requests really ran side by side, so isolation was put to the test


def test_django_request_and_translation_are_per_request(gcorn):
    server = gcorn("djangoproj.wsgi:application", "-k", "async")
    langs = ["de", "fr", "es", "it", "nl", "pt", "pl", "sv", "da", "fi"]
    paths = ["/isolation/?lang=%s" % l for l in langs]
    results, errors, overlapped = concurrent(server, paths)
    assert errors == []
    for p, lang in zip(paths, langs):
        assert results[p] == {"lang": lang, "arg": lang}
    assert overlapped >= 2
