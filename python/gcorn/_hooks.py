# Gunicorn-style server hooks for gcorn: loads `[hooks]` functions and calls them with objects standing for
# the arbiter and the worker (the attributes hook authors use: pid, age, cfg, log, num_workers, ...).
# Called from the native server; a hook's exception is logged with its traceback and never stops the server.
import importlib
import os
import socket
import sys
import time

import _gcorn

class Config:
    """Settings by attribute, as Gunicorn's cfg: server.cfg.workers, worker.cfg.bind..."""

    def __init__(self, settings):
        self.__dict__.update(settings)

    def __repr__(self):
        return "Config(%r)" % self.__dict__


class Log:
    """The error log, with logging's method names."""

    def debug(self, msg, *args):
        _gcorn.log(10, msg % args if args else str(msg))

    def info(self, msg, *args):
        _gcorn.log(20, msg % args if args else str(msg))

    def warning(self, msg, *args):
        _gcorn.log(30, msg % args if args else str(msg))

    warn = warning

    def error(self, msg, *args):
        _gcorn.log(40, msg % args if args else str(msg))

    def critical(self, msg, *args):
        _gcorn.log(50, msg % args if args else str(msg))

    def exception(self, msg, *args):
        import traceback
        self.error((msg % args if args else str(msg)) + "\n" + traceback.format_exc())


_listener_fds = []
_listener_sockets = []


def _listeners():
    """The listening sockets as socket objects (on duplicates, so a hook closing one closes nothing of ours)."""
    if len(_listener_sockets) != len(_listener_fds):
        _listener_sockets[:] = [socket.socket(fileno=os.dup(fd)) for fd in _listener_fds]
    return list(_listener_sockets)


class Arbiter:
    """What hooks receive as `server` (Gunicorn's Arbiter attributes hook authors use)."""

    def __init__(self, cfg, log):
        self.cfg, self.log = cfg, log
        self.pid = os.getpid()
        self.num_workers = cfg.workers
        self.app = cfg.wsgi_app
        self.proc_name = cfg.proc_name or cfg.wsgi_app
        self.timeout = cfg.timeout
        self.WORKERS = {}  # pid -> Worker, kept current by the master

    @property
    def LISTENERS(self):
        return _listeners()


class WorkerTmp:
    """Gunicorn's worker.tmp: notify() is a sign of life for the master (gcorn keeps it in shared memory)."""

    def __init__(self, beat):
        self._beat = beat

    def notify(self):
        if self._beat is not None:
            self._beat()

    def fileno(self):
        raise OSError("gcorn keeps heartbeats in shared memory, not in a file")

    def close(self):
        pass


class Worker:
    """What hooks receive as `worker` (Gunicorn's Worker attributes hook authors use)."""

    def __init__(self, cfg, log, age, pid=None, ppid=None, beat=None):
        self.cfg, self.log, self.age = cfg, log, age
        self.pid, self.ppid = pid, ppid
        self.booted = False
        self.alive = True
        self.nr = 0
        self.started = time.time()
        self.timeout = cfg.timeout
        self.max_requests = cfg.max_requests or sys.maxsize
        self.tmp = WorkerTmp(beat)

    @property
    def sockets(self):
        return _listeners()

    def notify(self):
        self.tmp.notify()


class Request:
    """What pre_request/post_request receive as `req`, built from the environ."""

    def __init__(self, environ):
        self.method = environ["REQUEST_METHOD"]
        self.uri = environ.get("RAW_URI", "")
        self.path = environ.get("PATH_INFO", "")
        self.query = environ.get("QUERY_STRING", "")
        self.version = tuple(int(v) for v in environ["SERVER_PROTOCOL"][5:].split("."))
        self.headers = [(k[5:].replace("_", "-"), v) for k, v in environ.items() if k.startswith("HTTP_")]
        self.environ = environ


class Response:
    def __init__(self, status, headers):
        self.status = status
        self.status_code = int(status.split(" ", 1)[0]) if status else 0
        self.headers = headers


_hooks = {}
_post_request_arity = 4
_server = None
_worker = None
_log = Log()


_files = {}


def _load(spec):
    """MODULE:FUNCTION, or /path/to/gunicorn.conf.py:FUNCTION for a hook defined in a Python configuration file."""
    module, _, name = spec.rpartition(":")
    if module.endswith(".py") or os.sep in module:
        if module not in _files:
            import importlib.util as util  # binds `util` only: `importlib` stays the module's global
            file_spec = util.spec_from_file_location("gunicorn_conf", module)
            _files[module] = util.module_from_spec(file_spec)
            file_spec.loader.exec_module(_files[module])
        return getattr(_files[module], name)
    return getattr(importlib.import_module(module), name)


def configure(settings_toml, specs):
    """Loads each "name=module:function" of `specs` (names checked by the server's hook table); raises on a
    missing module or function. Without hooks nothing needs the server object: it is not built (parsing the
    settings costs a worker's boot about 12 ms)."""
    global _server
    for spec in specs:
        name, _, target = spec.partition("=")
        _hooks[name] = _load(target)
    if _hooks:
        import tomllib
        _server = Arbiter(Config(tomllib.loads(settings_toml)), _log)
    if "post_request" in _hooks:
        global _post_request_arity
        _post_request_arity = max(2, min(4, _positional_arity(_hooks["post_request"])))
    return sorted(_hooks)


def has(name):
    return name in _hooks


def _call(name, *args):
    fn = _hooks.get(name)
    if fn is None:
        return
    try:
        fn(*args)
    except Exception:
        import traceback
        _log.error("Exception in %s hook:\n%s" % (name, traceback.format_exc()))


# ---- master side ----

def set_listeners(fds):
    _listener_fds[:] = fds
    _listener_sockets.clear()


def master(name, *args):
    """on_starting, on_reload, when_ready, pre_exec, on_exit: (server); nworkers_changed: (server, new, old),
    old None at boot as in Gunicorn."""
    if name == "nworkers_changed":
        _server.num_workers = args[0]
    _call(name, _server, *args)


def pre_fork(age):
    _call("pre_fork", _server, Worker(_server.cfg, _log, age, ppid=os.getpid()))


def spawned(pid, age):
    _server.WORKERS[pid] = Worker(_server.cfg, _log, age, pid=pid, ppid=os.getpid())


def child_exit(pid, age):
    worker = _server.WORKERS.pop(pid, None) or Worker(_server.cfg, _log, age, pid=pid, ppid=os.getpid())
    worker.alive = False
    _call("child_exit", _server, worker)


# ---- worker side ----

def become_worker(age, beat=None):
    """In the worker after fork: the worker object, then post_fork(server, worker)."""
    global _worker
    if _server is None:
        return
    _server.WORKERS.clear()  # the master's view; a worker sees only itself
    _worker = Worker(_server.cfg, _log, age, pid=os.getpid(), ppid=os.getppid(), beat=beat)
    _call("post_fork", _server, _worker)


def worker(name):
    """post_worker_init, worker_int, worker_abort: (worker); worker_exit: (server, worker)."""
    if _worker is None:
        return
    if name == "post_worker_init":
        _worker.booted = True
    if name == "worker_exit":
        _worker.alive = False
        _call(name, _server, _worker)
    else:
        _call(name, _worker)


def install_abort_handler():
    """worker_abort runs from a Python-level SIGABRT handler (a timeout kill), then the stack is dumped."""
    import faulthandler
    import signal

    def on_abort(signum, frame):
        worker("worker_abort")
        faulthandler.dump_traceback(all_threads=True)
        os._exit(1)

    signal.signal(signal.SIGABRT, on_abort)


def pre_request(environ):
    _worker.nr += 1
    _call("pre_request", _worker, Request(environ))


# ssl_version values that name the oldest version accepted (ssl.TLSVersion members); TLS_SERVER, TLS and SSLv23
# keep OpenSSL's default.
_MINIMUM_TLS = ("TLSv1", "TLSv1_1", "TLSv1_2", "TLSv1_3")


def _default_ssl_context(cfg):
    """The ssl.SSLContext gcorn's own TLS settings describe, made as Gunicorn's default_ssl_context_factory makes
    it (plus ssl_version as the minimum version, as gcorn applies it, and ALPN http/1.1)."""
    import ssl
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=cfg.ca_certs or None)
    context.load_cert_chain(certfile=cfg.certfile, keyfile=cfg.keyfile or None)
    context.verify_mode = ssl.VerifyMode(cfg.cert_reqs)
    if cfg.ciphers:
        context.set_ciphers(cfg.ciphers)
    if cfg.ssl_version in _MINIMUM_TLS:
        context.minimum_version = ssl.TLSVersion[cfg.ssl_version]
    context.set_alpn_protocols(["http/1.1"])
    return context


def ssl_context():
    """Gunicorn's ssl_context(config, default_ssl_context_factory) hook: the ssl.SSLContext gcorn's TLS serves
    with, in each worker. Raises if the hook fails or returns something gcorn cannot serve with."""
    import ssl
    cfg = _server.cfg
    context = _hooks["ssl_context"](cfg, lambda: _default_ssl_context(cfg))
    if not isinstance(context, ssl.SSLContext):
        raise TypeError("the ssl_context hook must return an ssl.SSLContext, not %s" % type(context).__name__)
    if context.protocol == ssl.PROTOCOL_TLS_CLIENT:
        raise ValueError("the ssl_context hook returned a client context (PROTOCOL_TLS_CLIENT); use "
                         "PROTOCOL_TLS_SERVER or default_ssl_context_factory()")
    # These call back into Python with the ssl.SSLSocket they expect behind each connection; gcorn's connections
    # have none, so they cannot run.
    for name in ("sni_callback", "keylog_filename", "_msg_callback"):
        if getattr(context, name, None) is not None:
            raise ValueError("gcorn cannot serve with an ssl.SSLContext that sets %s" % name)
    return context


def _positional_arity(fn):
    """How many positional arguments `fn` takes (4 if it takes *args or cannot be inspected)."""
    import inspect
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 4
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return 4
    return len([p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)])


def post_request(environ, status, headers):
    """Gunicorn calls post_request(worker, req[, environ[, resp]]) with as many arguments as it accepts."""
    args = (_worker, Request(environ), environ, Response(status, headers))
    _call("post_request", *args[:_post_request_arity])
