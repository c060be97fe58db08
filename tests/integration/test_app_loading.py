# APP_MODULE forms (module:variable, the default `application`, factories with literal arguments) and load
# failures: each stops gcorn quickly with Gunicorn's exit code (4: the app cannot be found, 3: it raised),
# a one-line reason and, for exceptions, the traceback. Also --check-config.
import time

import pytest
import requests

from conftest import APPS, run_gcorn

APP_SOURCE = '''
def _make(text):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [text.encode()]
    return app

app = _make("variable app")
application = _make("default application")
not_callable = 42
nothing = None

def factory():
    return _make("from factory()")

def factory_args(word, key=0, *, items=()):
    return _make("factory %s %r %r" % (word, key, items))

def factory_raises():
    raise RuntimeError("factory failed")

def factory_inner_type_error():
    return len(5)
'''


def body(server, path="/"):
    r = requests.get(server.url(path), timeout=10)
    assert r.status_code == 200
    return r.text


@pytest.mark.parametrize("spec, expected", [
    ("inline_app:app", "variable app"),
    ("inline_app", "default application"),
    ("inline_app:application", "default application"),
    ("inline_app:factory()", "from factory()"),
    ("inline_app:factory_args('arg', key=1)", "factory arg 1 ()"),
    ("inline_app:factory_args(\"x\", items=(1, 'two'))", "factory x 0 (1, 'two')"),
    ("inline_app: app ", "variable app"),
])
def test_app_forms(gcorn, spec, expected):
    server = gcorn(spec, source=APP_SOURCE)
    assert body(server) == expected


def test_dotted_module_path(gcorn):
    server = gcorn("djangoproj.wsgi:application") if _has_django() else gcorn("wsgi_cases:routes")
    assert requests.get(server.url("/"), timeout=10).status_code == 200


def _has_django():
    try:
        import django  # noqa: F401
        return True
    except ImportError:
        return False


def start_failing(gcorn, spec, source=APP_SOURCE, expected_exit=4, files=None, tmp_path=None):
    """Starts gcorn on an app that cannot load; returns (server, log)."""
    for name, text in (files or {}).items():
        (tmp_path / name).write_text(text)
    server = gcorn(spec, source=source, ready=False)
    server.expected_exit = expected_exit
    rc = server.proc.wait(timeout=60)
    log = server.log()
    assert rc == expected_exit, log
    assert log.count("Booting worker") == 1, "a failing app must not be respawned:\n" + log
    return server, log


@pytest.mark.parametrize("spec, reason", [
    ("no_such_module:app", "No module named 'no_such_module'"),
    ("no_such_package.sub:app", "No module named 'no_such_package.sub'"),
    ("inline_app:missing", "Failed to find attribute 'missing' in 'inline_app'."),
    ("inline_app:not_callable", "Application object must be callable."),
    ("inline_app:nothing", "is None"),
    ("inline_app:missing_factory()", "Failed to find attribute 'missing_factory' in 'inline_app'."),
    ("inline_app:factory(1, 2, 3)", "Error while loading the app"),
    ("inline_app:factory(some_variable)", "Failed to parse arguments as literal values"),
    ("inline_app:a.b", "Failed to parse 'a.b' as an attribute name or function call."),
    ("inline_app:1 +", "Failed to parse"),
])
def test_app_import_errors_exit_4(gcorn, spec, reason):
    server, log = start_failing(gcorn, spec)
    assert reason in log
    assert "App failed to load." in log
    # an AppImportError is a one-line reason: no traceback
    assert "Traceback" not in log


@pytest.mark.parametrize("source, spec, error", [
    ("def app(environ, start_response)\n    pass\n", "inline_app:app", "SyntaxError"),
    ("raise RuntimeError('import went wrong')\n", "inline_app:app", "RuntimeError: import went wrong"),
    ("import no_such_dependency_xyz\napp = None\n", "inline_app:app", "No module named 'no_such_dependency_xyz'"),
    (APP_SOURCE, "inline_app:factory_raises()", "RuntimeError: factory failed"),
    (APP_SOURCE, "inline_app:factory_inner_type_error()", "TypeError: object of type 'int' has no len()"),
])
def test_exceptions_while_loading_exit_3(gcorn, source, spec, error):
    server, log = start_failing(gcorn, spec, source=source, expected_exit=3)
    assert error in log
    assert "Traceback (most recent call last)" in log
    assert "Worker failed to boot." in log
    assert "Failed to load application '%s'" % spec in log  # the one-line reason


def test_import_error_inside_package_module(gcorn, tmp_path):
    pkg = tmp_path / "brokenpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "app.py").write_text("from brokenpkg import missing_name\n")
    server, log = start_failing(gcorn, "brokenpkg.app:app", source=None, expected_exit=3)
    assert "cannot import name 'missing_name'" in log
    assert "Traceback (most recent call last)" in log


def test_check_config_good_app(tmp_path):
    (tmp_path / "checked_app.py").write_text(APP_SOURCE)
    r = run_gcorn("--check-config", "--pythonpath", str(tmp_path), "checked_app:app")
    assert r.returncode == 0, r.stdout + r.stderr
    r = run_gcorn("--check-config", "--pythonpath", str(APPS), "wsgi_cases:routes")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("spec, reason", [
    ("checked_app:missing", "Failed to find attribute 'missing'"),
    ("no_such_module_for_check:app", "No module named"),
    ("checked_app:boom", "ZeroDivisionError"),
])
def test_check_config_bad_app(tmp_path, spec, reason):
    (tmp_path / "checked_app.py").write_text("x = 1 / 0\n" if spec.endswith(":boom") else APP_SOURCE)
    r = run_gcorn("--check-config", "--pythonpath", str(tmp_path), spec)
    assert r.returncode != 0
    assert reason in r.stdout + r.stderr
