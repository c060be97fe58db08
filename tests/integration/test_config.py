# Settings: CLI, TOML (-c), GCORN_CMD_ARGS and their precedence; --print-config round trips; errors name
# the setting (and file:line); the example config/gcorn.toml documents every setting.
import json
import re

from conftest import ROOT, run_gcorn


def printed(*args, env=None, cwd=None):
    r = run_gcorn("--print-config", *args, env=env, cwd=cwd)
    assert r.returncode == 0, r.stderr
    return r.stdout


def value(toml_text, key):
    m = re.search(r"^%s = (.*)$" % re.escape(key), toml_text, re.M)
    assert m, key
    return m.group(1)


def test_print_config_round_trips(tmp_path):
    first = printed("-w", "3", "-b", "unix:/tmp/x.sock", "-b", "[::1]:9000", "-e", 'A=1 "q"', "--keep-alive", "5",
                    "--access-logformat", '%(h)s "%(r)s"', "app:app")
    cfg = tmp_path / "printed.toml"
    cfg.write_text(first)
    assert printed("-c", str(cfg)) == first


def test_precedence_defaults_file_env_cli(tmp_path):
    cfg = tmp_path / "gcorn.toml"
    cfg.write_text('workers = 2\ntimeout = 10\nkeepalive = 7\nwsgi_app = "a:b"\n')
    out = printed("-c", str(cfg), env={"GCORN_CMD_ARGS": "-w 3 -t 20"})
    assert value(out, "workers") == "3"     # env beats file
    assert value(out, "timeout") == "20.0"
    assert value(out, "keepalive") == "7.0"  # file beats default
    out = printed("-c", str(cfg), "-w", "4", env={"GCORN_CMD_ARGS": "-w 3"})
    assert value(out, "workers") == "4"     # CLI beats env


def test_gcorn_toml_in_working_directory_is_read(tmp_path):
    (tmp_path / "gcorn.toml").write_text("workers = 5\n")
    assert value(printed(cwd=tmp_path), "workers") == "5"


def test_unknown_toml_key_names_file_line_and_key(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('workers = 2\n\nwrokers = 3\n')
    r = run_gcorn("-c", str(cfg), "app:app")
    assert r.returncode == 2
    assert "%s:3" % cfg in r.stderr and "wrokers" in r.stderr


def test_bad_toml_value_names_setting(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('timeout = "soon"\n')
    r = run_gcorn("-c", str(cfg), "app:app")
    assert r.returncode == 2
    assert "%s:1: setting 'timeout'" % cfg in r.stderr


def test_toml_syntax_error_names_file(tmp_path):
    cfg = tmp_path / "broken.toml"
    cfg.write_text('workers = = 2\n')
    r = run_gcorn("-c", str(cfg), "app:app")
    assert r.returncode == 2
    assert "broken.toml" in r.stderr


def test_bad_cli_values_name_the_setting():
    for args, name in ((["-w", "0"], "workers"), (["-k", "tornado"], "worker_class"),
                       (["--log-level", "loud"], "loglevel"), (["-m", "999"], "umask"),
                       (["--limit-request-line", "-1"], "limit_request_line"), (["-e", "NOEQUALS"], "raw_env")):
        r = run_gcorn(*args, "app:app")
        assert r.returncode == 2, args
        assert name in r.stderr, (args, r.stderr)


def test_missing_app_is_an_error():
    r = run_gcorn("-w", "2")
    assert r.returncode == 2
    assert "APP_MODULE" in r.stderr


def test_example_config_documents_every_setting_and_loads(tmp_path):
    text = (ROOT / "config" / "gcorn.toml").read_text()
    # In sync with the settings table: the default printout is exactly the shipped file.
    assert printed(env={"PORT": "", "WEB_CONCURRENCY": "", "SCRIPT_NAME": ""}, cwd=tmp_path) == text
    r = run_gcorn("-c", str(ROOT / "config" / "gcorn.toml"), "--print-config")
    assert r.returncode == 0, r.stderr
    keys = re.findall(r"^([a-z_]+) = ", text, re.M)
    assert len(keys) >= 30
    for key in keys:
        assert re.search(r"^# .+\n%s = " % key, text, re.M), "setting %s has no comment" % key


def test_serves_from_toml_alone(gcorn, tmp_path):
    from conftest import free_port
    port = free_port()
    server = gcorn(None, bind=False, ready=False, config='wsgi_app = "echo:app"\nbind = ["127.0.0.1:%d"]\nworkers = 2\n' % port)
    server.port = port
    from conftest import wait_ready
    wait_ready(server.proc, port, server.log_path)
    with server.get("/x") as r:
        assert json.loads(r.read())["PATH_INFO"] == "/x"
    assert len(server.worker_pids()) == 2


def test_raw_env_chdir_and_pythonpath(gcorn, tmp_path):
    appdir = tmp_path / "elsewhere"
    appdir.mkdir()
    (appdir / "envapp.py").write_text(
        "import os\n"
        "def app(environ, start_response):\n"
        "    body = ('%s|%s' % (os.environ.get('GREETING'), os.getcwd())).encode()\n"
        "    start_response('200 OK', [('Content-Length', str(len(body)))])\n"
        "    return [body]\n")
    server = gcorn("envapp:app", "-e", "GREETING=hi there", "--chdir", str(appdir))
    with server.get("/") as r:
        assert r.read().decode() == "hi there|%s" % appdir


def test_web_concurrency_and_port_defaults():
    out = printed(env={"WEB_CONCURRENCY": "6", "PORT": "9999"})
    assert value(out, "workers") == "6"
    assert value(out, "bind") == '["0.0.0.0:9999"]'


def test_virtualenv_site_packages_with_pth_files(gcorn, tmp_path):
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    (tmp_path / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.11.2\n")
    (site / "venvmod.py").write_text("GREETING = b'from the venv'\n")
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "pthmod.py").write_text("SUFFIX = b' and a .pth file'\n")
    (site / "extra.pth").write_text(str(extra) + "\n")
    source = ("import venvmod, pthmod\n"
              "def app(environ, start_response):\n"
              "    body = venvmod.GREETING + pthmod.SUFFIX\n"
              "    start_response('200 OK', [('Content-Length', str(len(body)))])\n"
              "    return [body]\n")
    server = gcorn(None, "--virtualenv", str(tmp_path / "venv"), source=source)
    with server.get("/") as r:
        assert r.read() == b"from the venv and a .pth file"


def test_env_table_wins_over_raw_env_of_the_same_file(gcorn, tmp_path):
    source = ("import os\n"
              "def app(environ, start_response):\n"
              "    body = ('%s %s' % (os.environ['A'], os.environ['B'])).encode()\n"
              "    start_response('200 OK', [('Content-Length', str(len(body)))])\n"
              "    return [body]\n")
    config = 'raw_env = ["A=from-list", "B=only-list"]\n[env]\nA = "from-table"\n'
    server = gcorn(None, config=config, source=source)
    with server.get("/") as r:
        assert r.read() == b"from-table only-list"
