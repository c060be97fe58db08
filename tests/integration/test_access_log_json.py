# The JSON access log (--access-logformat json, access_log_json): one valid JSON object per request whatever
# bytes the client sent, typed fields, X-Request-ID passed through or generated; the text format unchanged.
import json
import re
import time

import pytest

APP = """
def app(environ, start_response):
    status = "404 Not Found" if environ["PATH_INFO"] == "/missing" else "200 OK"
    start_response(status, [("Content-Type", "text/plain")])
    return [b"hi"]
"""

# Percent-encoded '"', '\\', 0x01 and bytes that are not UTF-8 (0xFF 0xFE) in the path, then UTF-8 "é"; the
# same characters raw in the query; obs-text (RFC 9110 §5.5, allowed in field values) in two headers.
ODD = (b'GET /a%22b%5Cc%01d%FF%FEe/caf%C3%A9?x="1"&y=\\ HTTP/1.1\r\nHost: t\r\n'
       b'User-Agent: say "hi" \\ \xff\xfe\r\nReferer: http://r/\x80\r\nX-Request-ID:  trace-42 \r\n'
       b'Connection: close\r\n\r\n')
RAW_PATH = b'GET /raw"q\\b\xff\xfe HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n'
MISSING = b"GET /missing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
PLAIN = b"GET /plain?n=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


def lines(logfile, n, timeout=10):
    """The log's lines once there are `n`, without the start-up probe's (GET /__ready__)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        data = logfile.read_bytes() if logfile.exists() else b""
        found = [line for line in data.splitlines() if b"/__ready__" not in line]
        if len(found) >= n:
            return found
        time.sleep(0.05)
    raise AssertionError("%d lines expected in %s:\n%r" % (n, logfile, data))


def send(server, *requests):
    for request in requests:
        assert server.raw(request).startswith(b"HTTP/1.1 "), request


def records(logfile, n):
    """The last `n` lines, each parsed (bytes: json.loads refuses a line that is not UTF-8)."""
    out = [json.loads(line) for line in lines(logfile, n)]
    assert len(out) == n and all(isinstance(r, dict) for r in out)
    return out


FIELDS = {"time": str, "remote_addr": str, "remote_user": type(None), "request_id": str, "method": str,
          "path": str, "query": str, "protocol": str, "request_line": str, "status": int, "response_length": int,
          "referer": (str, type(None)), "user_agent": (str, type(None)), "duration_s": float, "duration_us": int,
          "queue_s": float, "pid": int}


def check_types(record, server):
    assert list(record) == list(FIELDS)
    for name, kind in FIELDS.items():
        assert isinstance(record[name], kind), (name, record)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d", record["time"]), record["time"]
    assert record["pid"] in server.worker_pids()
    assert record["duration_us"] >= 0 and abs(record["duration_s"] - record["duration_us"] / 1e6) < 1e-9


@pytest.mark.parametrize("worker", ["sync", "async"])
def test_json_lines_are_valid_and_typed_whatever_the_client_sent(gcorn, tmp_path, worker):
    logfile = tmp_path / "access.log"
    server = gcorn(None, "-k", worker, "--access-logfile", str(logfile), "--access-logformat", "json", source=APP)
    send(server, ODD, RAW_PATH, MISSING, MISSING)
    odd, raw, missing1, missing2 = records(logfile, 4)
    for record in (odd, raw, missing1, missing2):
        check_types(record, server)

    assert odd["method"] == "GET" and odd["status"] == 200 and odd["response_length"] == 2
    assert odd["path"] == '/a"b\\c\x01d\ufffd\ufffde/café'  # decoded; bytes that are not UTF-8 are U+FFFD
    assert odd["query"] == 'x="1"&y=\\'
    assert odd["request_line"] == 'GET /a%22b%5Cc%01d%FF%FEe/caf%C3%A9?x="1"&y=\\ HTTP/1.1'
    assert odd["protocol"] == "HTTP/1.1" and odd["remote_addr"] == "127.0.0.1"
    assert odd["user_agent"] == 'say "hi" \\ \ufffd\ufffd'
    assert odd["referer"] == "http://r/\ufffd"
    assert odd["request_id"] == "trace-42"  # the client's, trimmed
    assert raw["path"] == '/raw"q\\b\ufffd\ufffd' and raw["user_agent"] is None and raw["referer"] is None

    assert missing1["status"] == 404 and missing1["path"] == "/missing"
    assert re.fullmatch(r"[0-9a-f]{32}", missing1["request_id"])  # generated, different for each request
    assert re.fullmatch(r"[0-9a-f]{32}", missing2["request_id"]) and missing2["request_id"] != missing1["request_id"]
    # One object per line: a control character is escaped, never written raw.
    assert b"\\u0001" in logfile.read_bytes() and b"\x01" not in logfile.read_bytes()


def test_access_log_json_in_toml_ignores_a_custom_format(gcorn, tmp_path):
    logfile = tmp_path / "access.log"
    config = 'access_log_json = true\naccess_log_format = "CUSTOM %%(s)s"\naccesslog = "%s"\n' % logfile
    server = gcorn(None, source=APP, config=config)
    send(server, MISSING)
    (record,) = records(logfile, 1)
    check_types(record, server)
    assert record["status"] == 404 and record["method"] == "GET"
    assert b"CUSTOM" not in logfile.read_bytes()


@pytest.mark.parametrize("flags", [["--access-log-json"], ["--access-log-format", "json"]])
def test_the_other_spellings(gcorn, tmp_path, flags):
    logfile = tmp_path / "access.log"
    server = gcorn(None, "--access-logfile", str(logfile), *flags, source=APP)
    send(server, PLAIN)
    (record,) = records(logfile, 1)
    assert record["path"] == "/plain" and record["query"] == "n=1" and record["status"] == 200


def test_the_text_format_is_unchanged_when_json_is_off(gcorn, tmp_path):
    logfile = tmp_path / "access.log"
    server = gcorn(None, source=APP, config='access_log_json = false\naccesslog = "%s"\n' % logfile)
    send(server, ODD)
    (line,) = lines(logfile, 1)
    # Gunicorn's default: %(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s", '"' escaped, bytes as sent.
    assert re.fullmatch(rb'127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
                        rb'"GET /a%22b%5Cc%01d%FF%FEe/caf%C3%A9\?x=\\"1\\"&y=\\ HTTP/1\.1" 200 2 '
                        rb'"http://r/\x80" "say \\"hi\\" \\ \xff\xfe"', line), line


def test_through_python_logging_the_message_is_the_json_line(gcorn, tmp_path):
    access = tmp_path / "access.log"
    logging_json = {"version": 1,
                    "handlers": {"access_file": {"class": "logging.FileHandler", "filename": str(access)}},
                    "loggers": {"gunicorn.access": {"handlers": ["access_file"], "level": "INFO", "propagate": False}}}
    (tmp_path / "logging.json").write_text(json.dumps(logging_json))
    server = gcorn(None, "--log-config-json", str(tmp_path / "logging.json"), "--access-logformat", "json",
                   source=APP)
    # A '%' in the path: logging must print the line as is, not %-format it.
    send(server, b"GET /100%2525%C3%A9 HTTP/1.1\r\nHost: t\r\nX-Request-ID: py-1\r\nConnection: close\r\n\r\n")
    (record,) = records(access, 1)
    check_types(record, server)
    assert record["path"] == "/100%25é" and record["request_id"] == "py-1" and record["status"] == 200
