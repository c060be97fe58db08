# Tests of packaging/gcorn-apps, the helper that merges /etc/gcorn into one file per app (run by
# scripts/package-test, as root). Uses temporary directories; never touches /etc/gcorn or /run/gcorn.
import os
import pwd
import grp
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
HERE_PATH = __import__("pathlib").Path(HERE)
HELPER = os.environ.get("GCORN_APPS", os.path.join(HERE, "..", "gcorn-apps"))
GCORN_BIN = os.environ.get("GCORN_BIN")  # when set, gcorn itself must accept the merged file


@pytest.fixture
def dirs(tmp_path):
    etc, run, log = tmp_path / "etc", tmp_path / "run", tmp_path / "log"
    (etc / "apps-enabled").mkdir(parents=True)
    (etc / "apps-available").mkdir()
    return etc, run, log


def helper(dirs, *args, gcorn="/bin/true"):
    """gcorn-apps on the temporary directories; by default a stand-in gcorn whose --check-config passes."""
    etc, run, log = dirs
    return subprocess.run([sys.executable, HELPER, "--etc", str(etc), "--run", str(run), "--log", str(log),
                           "--gcorn", gcorn, *args], capture_output=True, text=True)


def enable(dirs, name, text):
    etc = dirs[0]
    (etc / "apps-available" / f"{name}.toml").write_text(text)
    (etc / "apps-enabled" / f"{name}.toml").symlink_to(f"../apps-available/{name}.toml")


def config(dirs, name):
    r = helper(dirs, "config", name)
    assert r.returncode == 0, r.stderr
    with open(dirs[1] / f"{name}.toml", "rb") as f:
        return tomllib.load(f), r.stdout


def test_layers_in_order_with_app_name_substituted(dirs):
    etc, run, log = dirs
    (etc / "gcorn.toml").write_text(f'workers = 3\ntimeout = 10.0\naccesslog = "{log}/{{app}}.access.log"\n'
                                    'user = "nobody"\ngroup = "nogroup"\n')
    enable(dirs, "shop", 'wsgi_app = "shop:app"\nworkers = 5\npidfile = "/tmp/elsewhere.pid"\ndaemon = false\n')
    merged, _ = config(dirs, "shop")
    assert merged["wsgi_app"] == "shop:app"
    assert merged["workers"] == 5                                    # the app's file beats gcorn.toml
    assert merged["timeout"] == 10.0                                 # gcorn.toml beats the default
    assert merged["accesslog"] == f"{log}/shop.access.log"           # {app}
    assert merged["bind"] == [f"unix:{run}/shop.sock"]               # package defaults
    assert merged["errorlog"] == f"{log}/shop.log"
    assert merged["proc_name"] == "shop"
    assert merged["user"] == "nobody" and merged["group"] == "nogroup"
    assert merged["pidfile"] == f"{run}/shop.pid"                    # forced: the init script relies on it
    assert merged["daemon"] is True


def test_tables_merge_key_by_key_and_lists_are_replaced(dirs):
    etc = dirs[0]
    (etc / "gcorn.toml").write_text('user = ""\nbind = ["127.0.0.1:1"]\n[env]\nA = "global"\nB = "global"\n')
    enable(dirs, "a", 'bind = ["127.0.0.1:2"]\n[env]\nB = "app"\n[hooks.nested]\nx = 1\n')
    merged, _ = config(dirs, "a")
    assert merged["env"] == {"A": "global", "B": "app"}
    assert merged["bind"] == ["127.0.0.1:2"]
    assert merged["hooks"] == {"nested": {"x": 1}}


def test_raw_env_and_env_tables_merge_variable_by_variable(dirs):
    etc = dirs[0]
    (etc / "gcorn.toml").write_text('user = ""\nraw_env = ["A=global", "B=global", "C=x=y"]\n')
    enable(dirs, "a", 'raw_env = ["B=app-list"]\n[env]\nB = "app-table"\nD = "app"\n')
    merged, _ = config(dirs, "a")
    assert "raw_env" not in merged
    assert merged["env"] == {"A": "global", "B": "app-table", "C": "x=y", "D": "app"}
    enable(dirs, "bad", 'raw_env = ["NOEQUALS"]\n')
    r = helper(dirs, "config", "bad")
    assert r.returncode == 4 and "NOEQUALS" in r.stderr


def test_values_round_trip(dirs):
    tricky = {
        "s": 'quote " backslash \\ tab \t newline \n bell \x07 del \x7f é ☃',
        "i": -7, "f": 1.5e300, "inf": float("inf"), "b": False,
        "l": ["a", "b,c"], "nested": [[1, 2], ["x"]], "inline": [{"k": "v", "n": 1}],
        "weird key": "v", "t": {"deep": {"deeper": {"s": "x"}}},
    }
    text = "".join(f"{k} = {v}\n" for k, v in [
        ("s", '"quote \\" backslash \\\\ tab \\t newline \\n bell \\u0007 del \\u007f é ☃"'),
        ("i", "-7"), ("f", "1.5e300"), ("inf", "inf"), ("b", "false"), ("l", '["a", "b,c"]'),
        ("nested", '[[1, 2], ["x"]]'), ("inline", '[{k = "v", n = 1}]'), ('"weird key"', '"v"'),
        ("user", '""'), ("t.deep.deeper.s", '"x"')])
    enable(dirs, "r", text)
    merged, _ = config(dirs, "r")
    for key, value in tricky.items():
        assert merged[key] == value, key


def test_assignments_evaluate_in_sh_and_the_file_is_private(dirs):
    enable(dirs, "app", 'user = "nobody"\n')
    _, out = config(dirs, "app")
    shell = subprocess.run(["sh", "-c", out + '\necho "$GCORN_CONF|$GCORN_PIDFILE"'],
                           capture_output=True, text=True, check=True).stdout.strip()
    run = dirs[1]
    assert shell == f"{run}/app.toml|{run}/app.pid"
    st = os.stat(run / "app.toml")
    assert st.st_mode & 0o777 == 0o640
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (0, pwd.getpwnam("nobody").pw_gid)
    assert sorted(os.listdir(run)) == ["app.toml"]  # no temporary file left


@pytest.fixture
def open_dirs():
    """Like dirs, but where another user can read (pytest's tmp_path is 0700)."""
    top = tempfile.mkdtemp(prefix="gcorn-apps-test-")
    os.chmod(top, 0o755)
    etc, run, log = (os.path.join(top, d) for d in ("etc", "run", "log"))
    for d in (etc + "/apps-enabled", etc + "/apps-available", run, log):
        os.makedirs(d)
        os.chmod(d, 0o777 if d == log else 0o755)
    yield tuple(map(type(HERE_PATH), (etc, run, log)))
    shutil.rmtree(top)


def fake_gcorn(directory, rc):
    """A gcorn whose --check-config records its uid, gid and arguments and exits rc."""
    script = os.path.join(directory, "fake-gcorn")
    with open(script, "w") as f:
        f.write(f'#!/bin/sh\necho "$(id -u) $(id -g) $*" > {directory}/check.out\necho "it broke" >&2\nexit {rc}\n')
    os.chmod(script, 0o755)
    return script


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_check_runs_as_the_workers_user_on_the_new_file(open_dirs):
    etc, run, log = open_dirs
    enable(open_dirs, "app", 'user = "nobody"\n')
    gcorn = fake_gcorn(str(log), 0)  # log is writable by all
    r = helper(open_dirs, "config", "app", gcorn=gcorn)
    assert r.returncode == 0, r.stderr
    nobody = pwd.getpwnam("nobody")
    uid, gid, _, conf, check = open(log / "check.out").read().split()
    assert (int(uid), int(gid)) == (nobody.pw_uid, nobody.pw_gid)
    assert conf != str(run / "app.toml") and check == "--check-config"  # the candidate, before the rename


def test_a_failed_check_keeps_the_running_configuration(dirs):
    run = dirs[1]
    enable(dirs, "app", 'user = ""\nworkers = 2\n')
    config(dirs, "app")
    (dirs[0] / "apps-available" / "app.toml").write_text('user = ""\nworkers = 3\n')
    r = helper(dirs, "config", "app", gcorn=fake_gcorn(str(run), 1))
    assert r.returncode == 5 and "it broke" in r.stderr
    with open(run / "app.toml", "rb") as f:
        assert tomllib.load(f)["workers"] == 2
    assert sorted(os.listdir(run)) == ["app.toml", "check.out", "fake-gcorn"]
    r = helper(dirs, "config", "--check-app=no", "app", gcorn=fake_gcorn(str(run), 1))
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_log_files_belong_to_the_workers_user(dirs):
    etc, run, log = dirs
    enable(dirs, "web", 'user = "nobody"\naccesslog = "' + str(log) + '/{app}.access.log"\n')
    config(dirs, "web")
    nobody = pwd.getpwnam("nobody")
    adm = grp.getgrnam("adm").gr_gid
    for name in ("web.log", "web.access.log"):
        st = os.stat(log / name)
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (nobody.pw_uid, adm, 0o640), name
    # After logrotate moved them away, `logs` brings them back the same way.
    for name in ("web.log", "web.access.log"):
        os.rename(log / name, log / (name + ".1"))
    assert helper(dirs, "logs", "web").returncode == 0
    assert os.stat(log / "web.log").st_uid == nobody.pw_uid


def test_errors_name_the_file_and_use_distinct_codes(dirs):
    r = helper(dirs, "config", "missing")
    assert r.returncode == 3 and "missing.toml" in r.stderr
    enable(dirs, "bad", "workers = = 2\n")
    r = helper(dirs, "config", "bad")
    assert r.returncode == 4 and "bad.toml" in r.stderr and "line 1" in r.stderr
    enable(dirs, "nouser", 'user = "no-such-user-here"\n')
    r = helper(dirs, "config", "nouser")
    assert r.returncode == 4 and "no-such-user-here" in r.stderr
    for name in ("../etc", ".hidden", "a/b", ""):
        assert helper(dirs, "config", name).returncode == 2, name


def test_list_enabled_apps(dirs):
    etc = dirs[0]
    enable(dirs, "b", "")
    enable(dirs, "a", "")
    (etc / "apps-enabled" / "notes.txt").write_text("")
    (etc / "apps-enabled" / "gone.toml").symlink_to("../apps-available/gone.toml")
    r = helper(dirs, "list")
    assert r.stdout.split() == ["a", "b"]
    assert "gone.toml" in r.stderr


def test_rotate_signals_every_running_master(dirs):
    etc, run, log = dirs
    enable(dirs, "app", 'user = ""\n')
    config(dirs, "app")
    marker = run / "usr1"
    child = subprocess.Popen([sys.executable, "-c",
                              "import signal, sys, time\n"
                              f"signal.signal(signal.SIGUSR1, lambda *a: open({str(marker)!r}, 'w').close())\n"
                              "print('ready', flush=True)\n"
                              "time.sleep(30)\n"], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        (run / "app.pid").write_text(f"{child.pid}\n")
        (run / "stale.pid").write_text("999999999\n")
        os.remove(log / "app.log")
        assert helper(dirs, "rotate").returncode == 1  # stale has no RUN/stale.toml: reported, others done
        for _ in range(50):
            if marker.exists():
                break
            time.sleep(0.1)
        assert marker.exists()
        assert (log / "app.log").exists()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()


@pytest.mark.skipif(not GCORN_BIN, reason="GCORN_BIN not set")
def test_gcorn_reads_the_merged_file(dirs):
    etc = dirs[0]
    (etc / "gcorn.toml").write_text("workers = 3\n")
    enable(dirs, "app", 'wsgi_app = "x:app"\nuser = ""\ngroup = ""\nraw_env = ["A=1"]\n')
    assert helper(dirs, "config", "--check-app=no", "app", gcorn=GCORN_BIN).returncode == 0
    out = subprocess.run([GCORN_BIN, "-c", str(dirs[1] / "app.toml"), "--print-config"],
                         capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    printed = tomllib.loads(out.stdout)
    assert printed["workers"] == 3 and printed["daemon"] is True and printed["raw_env"] == ["A=1"]


@pytest.mark.skipif(not GCORN_BIN or os.geteuid() != 0, reason="GCORN_BIN not set, or not root")
def test_real_check_imports_the_app_as_its_user(open_dirs):
    etc, run, log = open_dirs
    app_dir = run.parent / "app"
    app_dir.mkdir()
    os.chmod(app_dir, 0o755)
    (app_dir / "good.py").write_text("def application(environ, start_response):\n    return []\n")
    (app_dir / "owner.py").write_text("import os\nassert os.getuid() != 0, 'imported as root'\n"
                                    "def application(environ, start_response):\n    return []\n")
    for name, module in (("good", "good"), ("bad", "no_such_module"), ("owner", "owner")):
        enable(open_dirs, name, f'wsgi_app = "{module}:application"\npythonpath = ["{app_dir}"]\nuser = "nobody"\n')
    assert helper(open_dirs, "config", "good", gcorn=GCORN_BIN).returncode == 0
    r = helper(open_dirs, "config", "bad", gcorn=GCORN_BIN)
    assert r.returncode == 5 and "no_such_module" in r.stderr
    assert helper(open_dirs, "config", "owner", gcorn=GCORN_BIN).returncode == 0
