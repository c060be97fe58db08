# Tests of packaging/gen-manpage: every setting of `gcorn --print-config` appears in gcorn.1 with its flags,
# default and help, escaped for roff. Uses a stand-in binary; with GCORN_BIN also the real one.
import os
import shutil
import subprocess
import sys
import tomllib

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
GEN = os.path.join(HERE, "..", "gen-manpage")
GCORN_BIN = os.environ.get("GCORN_BIN")

HELP = """gcorn: a fast, Gunicorn-compatible WSGI HTTP server.
Usage: gcorn [OPTIONS] [APP_MODULE...]

Options:
  -h,--help                             Show this message and exit.
  -c,--config FILE                      The TOML configuration file.
  -v,--version                          Print the version and exit.


server:
  -b,--bind ADDRESS                     Sockets to bind: HOST:PORT or unix:PATH.
  --reuse-port                          Set SO_REUSEPORT on listeners.
"""

PRINT_CONFIG = """# gcorn 9.8.7 configuration. Every key is a setting; `gcorn -c FILE` reads it.

# ---- server ----

# The WSGI application; the positional argument sets it.
wsgi_app = ""

# Sockets to bind: HOST:PORT or unix:PATH. [-b,--bind]
bind = ["127.0.0.1:8000"]

# Set SO_REUSEPORT on listeners. [--reuse-port]
reuse_port = false

# ---- logging ----

# .A format with a \\backslash and 'quotes'.
access_log_format = "%(h)s \\"%(r)s\\""
"""


@pytest.fixture
def fake_gcorn(tmp_path):
    for name, text in (("help", HELP), ("config", PRINT_CONFIG)):
        (tmp_path / name).write_text(text)
    script = tmp_path / "gcorn"
    script.write_text(f"""#!/bin/sh
case "$1" in
    --help) cat {tmp_path}/help ;;
    --print-config) cat {tmp_path}/config ;;
    --version) echo "gcorn (version 9.8.7)" ;;
    *) exit 2 ;;
esac
""")
    script.chmod(0o755)
    return str(script)


def generate(binary, epoch="86400"):
    env = dict(os.environ, SOURCE_DATE_EPOCH=epoch)
    return subprocess.run([sys.executable, GEN, binary], capture_output=True, text=True, check=True, env=env).stdout


def test_every_setting_with_flags_default_and_help(fake_gcorn):
    page = generate(fake_gcorn)
    assert page.startswith('.TH GCORN 1 "1970-01-02" "gcorn 9.8.7" "User Commands"\n')
    assert ".SS Server\n" in page and ".SS Logging\n" in page
    assert '\\fBbind\\fR = \\fI["127.0.0.1:8000"]\\fR\n\\fB\\-b\\fR, \\fB\\-\\-bind\\fR \\fIADDRESS\\fR\n' in page
    assert "\\fB\\-\\-reuse\\-port\\fR\n.br\nSet SO_REUSEPORT on listeners.\n" in page
    assert "\\fBwsgi_app\\fR" in page
    # General options are those that are not settings.
    options = page.split(".SH OPTIONS\n")[1].split(".SH SETTINGS")[0]
    assert "\\fB\\-c\\fR, \\fB\\-\\-config\\fR \\fIFILE\\fR" in options and "bind" not in options


def test_roff_escapes(fake_gcorn):
    page = generate(fake_gcorn)
    assert "\\&.A format with a \\ebackslash and 'quotes'." in page  # leading dot, backslash
    for line in page.splitlines():
        assert not line.startswith("'"), line


@pytest.mark.skipif(not shutil.which("man"), reason="man-db not installed")
def test_man_renders_without_warnings(fake_gcorn, tmp_path):
    page = tmp_path / "gcorn.1"
    page.write_text(generate(fake_gcorn))
    r = subprocess.run(["man", "--warnings", "-l", str(page)], capture_output=True, text=True,
                       env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0"))
    assert r.returncode == 0 and r.stderr == "", r.stderr


@pytest.mark.skipif(not GCORN_BIN, reason="GCORN_BIN not set")
def test_real_binary_every_key_documented():
    page = generate(GCORN_BIN)
    printed = tomllib.loads(subprocess.run([GCORN_BIN, "--print-config"], capture_output=True, text=True,
                                           check=True, cwd="/").stdout)
    for key in printed:
        assert f"\\fB{key.replace('-', chr(92) + '-')}\\fR = " in page, key
