# Reads a Gunicorn configuration file (gunicorn.conf.py, or python:MODULE) the way Gunicorn does, for gcorn's
# settings loader: the file runs as Python, its module-level names that are settings become settings (computed
# values work), functions named after server hooks become hooks, other names are ignored. Knows nothing of the
# server; run by gcorn as `python3 -m gcorn._pyconfig SOURCE SETTINGS HOOKS` and answers in TOML on stdout.
import importlib
import json
import importlib.util
import os
import sys


def _load(source):
    """The configuration module, and the hook spec prefix that imports it again in a worker."""
    if source.startswith("python:"):
        name = source[len("python:"):]
        return importlib.import_module(name), name
    path = os.path.abspath(source)
    if not os.path.exists(path):
        raise SystemExit("cannot read configuration file '%s'" % source)
    spec = importlib.util.spec_from_file_location("gunicorn_conf", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, path


def _strings(value):
    """A value as the command line would give it: a list of strings."""
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, (list, tuple, set)):
        return [str(v) for v in value]
    if isinstance(value, dict):  # secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}, raw_env-like dicts
        return ["%s=%s" % kv for kv in value.items()]
    return [str(value)]


def _quote(text):
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def read(source, settings, hooks):
    before = dict(os.environ)
    module, origin = _load(source)
    found, hooked = {}, {}
    for name, value in vars(module).items():
        if name.startswith("_") or value is None:
            continue
        if name in hooks and callable(value):
            hooked[name] = "%s:%s" % (origin, name)
        elif name == "logconfig_dict" and isinstance(value, dict):
            if value:  # {} is Gunicorn's default: no dictConfig
                found[name] = [json.dumps(value)]
        elif name in settings and not hasattr(value, "__spec__"):
            # A callable for a non-hook setting (Gunicorn's dirty-arbiter hooks) is passed on by
            # name, so gcorn can refuse it by name rather than ignore it.
            found[name] = [getattr(value, "__qualname__", str(value))] if callable(value) else _strings(value)
    # `from gevent import monkey; monkey.patch_all()` in the file, Gunicorn's gevent idiom: the workers do it too.
    gevent_monkey = sys.modules.get("gevent.monkey")
    if gevent_monkey is not None and getattr(gevent_monkey, "saved", None) and "gevent_monkey_patch" in settings:
        found.setdefault("gevent_monkey_patch", ["true"])
    # Environment the file set for the server (os.environ[...] = ...) reaches the workers, as in Gunicorn's master.
    changed = {k: v for k, v in os.environ.items() if before.get(k) != v}
    lines = ["[settings]"]
    lines += ["%s = [%s]" % (k, ", ".join(_quote(s) for s in v)) for k, v in found.items()]
    lines.append("[hooks]")
    lines += ["%s = %s" % (k, _quote(v)) for k, v in hooked.items()]
    lines.append("[env]")
    lines += ["%s = %s" % (_quote(k), _quote(v)) for k, v in changed.items()]
    return "\n".join(lines) + "\n"


def main(argv):
    source, settings, hooks = argv[1], set(argv[2].split(",")), set(argv[3].split(","))
    sys.path.insert(0, os.getcwd())  # as Gunicorn: the project next to the file can be imported
    try:
        sys.stdout.write(read(source, settings, hooks))
    except SystemExit:
        raise
    except BaseException as e:  # the file's own error, named with the file
        import traceback
        sys.stderr.write("".join(traceback.format_exception(e)))
        raise SystemExit("error in configuration file '%s': %s: %s" % (source, type(e).__name__, e))


if __name__ == "__main__":
    main(sys.argv)
