# Real frameworks on gcorn: a Flask app (apps/flask_app.py) and a minimal Django project (apps/djangoproj/),
# served by the real binary and driven with requests.
import hashlib
import json
import os

import pytest
import requests

flask = pytest.importorskip("flask")
django = pytest.importorskip("django")


# -- Flask ---------------------------------------------------------------------------------------------------

@pytest.fixture
def flask_server(gcorn):
    return gcorn("flask_app:app")


def test_flask_routes(flask_server):
    r = requests.get(flask_server.url("/"), timeout=10)
    assert r.status_code == 200
    assert r.text == "Hello from Flask"
    assert r.headers["Content-Type"].startswith("text/html")
    r = requests.get(flask_server.url("/hello/w%C3%B6rld"), timeout=10)
    assert r.status_code == 200
    assert r.text == "Hello, w\u00f6rld! (script_root='')"  # Flask recovers UTF-8 from the latin-1 PATH_INFO


def test_flask_form_post(flask_server):
    r = requests.post(flask_server.url("/form"), data={"name": "caf\u00e9", "item": ["a", "b", "c"]}, timeout=10)
    assert r.status_code == 200
    assert r.text == "name=caf\u00e9;count=3"


def test_flask_json(flask_server):
    payload = {"numbers": [1, 2, 3], "text": "\u2603", "nested": {"ok": True}}
    r = requests.post(flask_server.url("/json?x=1"), json=payload, timeout=10)
    assert r.status_code == 200
    got = r.json()
    assert got["received"] == payload
    assert got["method"] == "POST"
    assert got["scheme"] == "http"
    assert got["url"] == flask_server.url("/json?x=1")
    r = requests.post(flask_server.url("/json"), json=payload, headers={"X-Forwarded-Proto": "https"}, timeout=10)
    assert r.json()["scheme"] == "https"  # from a trusted front end (127.0.0.1)


def test_flask_multipart_upload(flask_server):
    data = bytes(range(256)) * 4000
    r = requests.post(flask_server.url("/upload"), files={"file": ("blob.bin", data)}, timeout=10)
    assert r.status_code == 200
    assert r.json() == {"filename": "blob.bin", "size": len(data)}


def test_flask_streamed_response(flask_server):
    r = requests.get(flask_server.url("/stream"), timeout=10)
    assert r.status_code == 200
    assert r.headers.get("Transfer-Encoding") == "chunked"
    assert r.text == "".join("line %d\n" % i for i in range(5))


def test_flask_404_and_500(flask_server):
    r = requests.get(flask_server.url("/nope"), timeout=10)
    assert r.status_code == 404
    assert r.text == "custom 404: /nope"
    r = requests.get(flask_server.url("/boom"), timeout=10)
    assert r.status_code == 500  # Flask's own error page (it catches the exception)
    flask_server.wait_for_log("RuntimeError: flask view failed")  # Flask logs to wsgi.errors / stderr


def test_flask_under_script_name(gcorn):
    server = gcorn("flask_app:app", "--script-name", "/prefix")
    r = requests.get(server.url("/prefix/hello/x"), timeout=10)
    assert r.status_code == 200
    assert r.text == "Hello, x! (script_root='/prefix')"


def test_flask_send_file(flask_server, tmp_path):
    path = tmp_path / "download.bin"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    r = requests.get(flask_server.url("/file"), params={"path": str(path)}, timeout=30)
    assert r.status_code == 200
    assert r.headers["Content-Length"] == str(path.stat().st_size)
    assert hashlib.sha256(r.content).digest() == hashlib.sha256(path.read_bytes()).digest()


# -- Django --------------------------------------------------------------------------------------------------

@pytest.fixture
def django_server(gcorn):
    return gcorn("djangoproj.wsgi", "-w", "2")  # default variable: `application`


def test_django_pages(django_server):
    r = requests.get(django_server.url("/"), timeout=10)
    assert r.status_code == 200
    assert r.text == "Hello from Django"
    r = requests.get(django_server.url("/info/some-name/?a=1&b=%C3%A9"), timeout=10)
    assert r.status_code == 200
    assert r.json() == {"path": "/info/some-name/", "path_info": "/info/some-name/", "script_name": "",
                        "method": "GET", "query": {"a": "1", "b": "\u00e9"}, "secure": False, "name": "some-name",
                        "host": "127.0.0.1:%d" % django_server.port}


def test_django_append_slash_redirect_and_404(django_server):
    r = requests.get(django_server.url("/info/x"), allow_redirects=False, timeout=10)
    assert r.status_code == 301
    assert r.headers["Location"] == "/info/x/"
    r = requests.get(django_server.url("/missing/"), timeout=10)
    assert r.status_code == 404
    assert "Not Found" in r.text


def test_django_csrf_exempt_post(django_server):
    r = requests.post(django_server.url("/submit/"), data={"field": "value", "other": "\u00e9"}, timeout=10)
    assert r.status_code == 200
    assert r.json()["received"] == {"field": "value", "other": "\u00e9"}
    r = requests.post(django_server.url("/submit/"), data=json.dumps({"k": [1, 2]}),
                      headers={"Content-Type": "application/json"}, timeout=10)
    assert r.json()["received"] == {"k": [1, 2]}


def test_django_csrf_protected_post_is_refused(django_server):
    r = requests.post(django_server.url("/protected/"), data={"a": "b"}, timeout=10)
    assert r.status_code == 403


def test_django_under_script_name(gcorn):
    server = gcorn("djangoproj.wsgi:application", "--script-name", "/site")
    r = requests.get(server.url("/site/info/abc/"), timeout=10)
    assert r.status_code == 200
    got = r.json()
    assert (got["path"], got["path_info"], got["script_name"]) == ("/site/info/abc/", "/info/abc/", "/site")


def test_django_https_from_trusted_proxy(django_server):
    r = requests.get(django_server.url("/info/x/"), headers={"X-Forwarded-Proto": "https"}, timeout=10)
    assert r.json()["secure"] is True


def test_django_view_error_is_500_and_logged(django_server):
    r = requests.get(django_server.url("/boom/"), timeout=10)
    assert r.status_code == 500  # Django's own error page: it handles the exception
    django_server.wait_for_log("RuntimeError: django view failed")  # LOGGING sends it to stderr = error log
    assert requests.get(django_server.url("/"), timeout=10).status_code == 200


def test_django_file_response(django_server, tmp_path):
    path = tmp_path / "download.bin"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    r = requests.get(django_server.url("/download/"), params={"path": str(path)}, timeout=30)
    assert r.status_code == 200
    assert r.headers["Content-Length"] == str(path.stat().st_size)
    assert hashlib.sha256(r.content).digest() == hashlib.sha256(path.read_bytes()).digest()
