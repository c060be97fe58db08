"""Error and access lines through Python's logging, as Gunicorn's glogging.Logger does, when logconfig,
logconfig_dict, logconfig_json or syslog is set (log::forward_to, hooks/python_logging.cpp).

The loggers are Gunicorn's, `gunicorn.error` and `gunicorn.access`, set up in Gunicorn's order: a handler for
errorlog / accesslog, syslog handlers, then the user's configuration, merged over Gunicorn's defaults; so
existing dictConfig and fileConfig files work unchanged. Without these settings gcorn logs natively (spdlog).
"""
import copy
import json
import logging
import logging.config
import logging.handlers
import os
import socket
import sys
import tomllib

# Gunicorn's names for syslog facilities.
SYSLOG_FACILITIES = {
    "auth": 4, "authpriv": 10, "cron": 9, "daemon": 3, "ftp": 11, "kern": 0, "lpr": 6, "mail": 2, "news": 7,
    "security": 4, "syslog": 5, "user": 1, "uucp": 8, "local0": 16, "local1": 17, "local2": 18, "local3": 19,
    "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

ERROR_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"
DATE_FORMAT = "[%Y-%m-%d %H:%M:%S %z]"
SYSLOG_FORMAT = "[%(process)d] %(message)s"

# What a user's dictConfig is merged over (Gunicorn's CONFIG_DEFAULTS): both loggers print unless told otherwise.
DEFAULTS = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "INFO", "handlers": ["console"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": True,
                           "qualname": "gunicorn.error"},
        "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": True,
                            "qualname": "gunicorn.access"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "generic", "stream": "ext://sys.stdout"},
        "error_console": {"class": "logging.StreamHandler", "formatter": "generic", "stream": "ext://sys.stderr"},
    },
    "formatters": {
        "generic": {"format": ERROR_FORMAT, "datefmt": DATE_FORMAT, "class": "logging.Formatter"},
    },
}

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
          "critical": logging.CRITICAL}

error_log = logging.getLogger("gunicorn.error")
error_log.propagate = False
access_log = logging.getLogger("gunicorn.access")
access_log.propagate = False
_access_format = ""


class SafeAtoms(dict):
    """Gunicorn's atoms wrapper: a missing atom is '-', header and environ atoms are found in any case."""

    def __getitem__(self, key):
        if key.startswith("{"):
            key = key.lower()
        return super().get(key, "-")


def parse_syslog_address(addr):
    """(socket type, address) for SysLogHandler, from udp://HOST:PORT, tcp://HOST:PORT or unix://PATH#dgram."""
    if addr.startswith("unix://"):
        path, _, kind = addr[len("unix://"):].partition("#")
        return (socket.SOCK_DGRAM if kind == "dgram" else socket.SOCK_STREAM if kind == "stream" else None), path
    if addr.startswith("udp://"):
        socktype, rest = socket.SOCK_DGRAM, addr[len("udp://"):]
    elif addr.startswith("tcp://"):
        socktype, rest = socket.SOCK_STREAM, addr[len("tcp://"):]
    else:
        raise RuntimeError("invalid syslog address %r" % addr)
    if rest.startswith("["):
        host, _, rest = rest[1:].partition("]")
    else:
        host, _, port = rest.partition(":")
        rest = ":" + port if port else ""
    port = int(rest[1:]) if rest.startswith(":") else 514
    return socktype, (host.lower() or "localhost", port)


def _own(handler):
    handler._gcorn = True
    return handler


def _file_or_stream(path, stream):
    return logging.StreamHandler(stream) if path == "-" else logging.FileHandler(path)


def _syslog_handler(cfg, name):
    prefix = cfg.get("syslog_prefix") or (cfg.get("proc_name") or cfg.get("wsgi_app") or cfg.get("paste")
                                          or "gcorn").replace(":", ".")
    socktype, address = parse_syslog_address(cfg["syslog_addr"])
    handler = logging.handlers.SysLogHandler(address=address, socktype=socktype,
                                             facility=SYSLOG_FACILITIES[cfg["syslog_facility"].lower()])
    handler.setFormatter(logging.Formatter("gunicorn.%s.%s: %s" % (prefix, name, SYSLOG_FORMAT)))
    return handler


def _merged(user):
    """Gunicorn's merge (top-level keys of the user's dict replace the defaults'), except that handlers and
    formatters merge by name: the defaults' root logger names the "console" handler, so with Gunicorn a dict that
    defines only its own handlers fails with "Unable to configure root logger"; here it works."""
    config = copy.deepcopy(DEFAULTS)
    for key, value in user.items():
        if key in ("handlers", "formatters") and isinstance(value, dict):
            config[key].update(value)
        else:
            config[key] = value
    return config


def setup(settings_toml):
    """Configures the two loggers from gcorn's settings; returns the lowest level gunicorn.error logs."""
    global _access_format
    cfg = tomllib.loads(settings_toml)
    _access_format = cfg["access_log_format"]
    error_log.setLevel(LEVELS.get(cfg["loglevel"].lower(), logging.INFO))
    access_log.setLevel(logging.INFO)
    for log in (error_log, access_log):
        for handler in [h for h in log.handlers if getattr(h, "_gcorn", False)]:
            log.removeHandler(handler)
            handler.close()

    errors = _own(_file_or_stream(cfg["errorlog"] or "-", sys.stderr))
    errors.setFormatter(logging.Formatter(ERROR_FORMAT, DATE_FORMAT))
    error_log.addHandler(errors)
    if cfg["accesslog"]:
        access = _own(_file_or_stream(cfg["accesslog"], sys.stdout))
        access.setFormatter(logging.Formatter("%(message)s"))
        access_log.addHandler(access)
    if cfg["syslog"]:
        error_log.addHandler(_own(_syslog_handler(cfg, "error")))
        if not cfg["disable_redirect_access_to_syslog"]:
            access_log.addHandler(_own(_syslog_handler(cfg, "access")))

    try:
        if cfg["logconfig_dict"]:
            logging.config.dictConfig(_merged(json.loads(cfg["logconfig_dict"])))
        elif cfg["logconfig_json"]:
            with open(cfg["logconfig_json"]) as f:
                logging.config.dictConfig(_merged(json.load(f)))
        elif cfg["logconfig"]:
            defaults = {"__file__": cfg["logconfig"], "here": os.path.dirname(cfg["logconfig"])}
            logging.config.fileConfig(cfg["logconfig"], defaults=defaults, disable_existing_loggers=False)
    except (ValueError, TypeError, AttributeError, ImportError, KeyError, OSError) as e:
        name = "logconfig_dict" if cfg["logconfig_dict"] else "logconfig_json" if cfg["logconfig_json"] else "logconfig"
        raise RuntimeError("%s: %s" % (name, e)) from None
    return error_log.getEffectiveLevel()


def error(level, message):
    error_log.log(level, message)


def access(atoms, line=None):
    """One access record: Gunicorn's format applied to the atoms, or (access_log_json) the JSON line gcorn
    rendered; the atoms are the record's args either way. '%' is doubled so that logging prints the line as is."""
    access_log.info(_access_format if line is None else line.replace("%", "%%"), SafeAtoms(atoms))


def reopen():
    """USR1: file handlers reopen their files (logrotate), as Gunicorn's reopen_files."""
    for log in (error_log, access_log):
        for handler in log.handlers:
            if isinstance(handler, logging.FileHandler):
                handler.acquire()
                try:
                    if handler.stream:
                        handler.stream.close()
                    handler.stream = handler._open()
                finally:
                    handler.release()
