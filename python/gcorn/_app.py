# Loads the WSGI application named by APP_MODULE, with Gunicorn's syntax and error messages.
# Knows nothing of the server; raises AppImportError with a one-line reason.
import importlib
import keyword
import os
import sys


class AppImportError(Exception):
    """The application could not be loaded; str() is the one-line reason for the error log."""


def _parse_target(spec):
    """'mod:name', 'mod:factory()', 'mod:factory(1, key="v")' -> (module, name, args, kwargs, called)."""
    module, _, obj = spec.partition(":")
    if not module:
        raise AppImportError("Failed to find application object: %r is not MODULE:VARIABLE" % spec)
    obj = obj or "application"
    name = obj.strip()
    if name.isidentifier() and not keyword.iskeyword(name):  # 'mod:app': no parser (importing ast slows a boot)
        return module, name, (), {}, False
    import ast
    try:
        expr = ast.parse(obj.strip(), mode="eval").body
    except SyntaxError:
        raise AppImportError("Failed to parse %r as an attribute name or function call." % obj) from None
    if isinstance(expr, ast.Name):
        return module, expr.id, (), {}, False
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name):
        try:
            args = [ast.literal_eval(a) for a in expr.args]
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in expr.keywords}
        except ValueError:
            raise AppImportError("Failed to parse arguments as literal values: %r" % obj) from None
        return module, expr.func.id, args, kwargs, True
    raise AppImportError("Failed to parse %r as an attribute name or function call." % obj)


def load(spec):
    """Imports and returns the callable named by `spec`; raises AppImportError or the import's exception."""
    module, name, args, kwargs, called = _parse_target(spec)
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if not _names_module(e.name, module):
            raise  # the module exists but imports something missing: show that traceback
        raise AppImportError("No module named %r" % module) from None
    try:
        app = getattr(mod, name)
    except AttributeError:
        raise AppImportError("Failed to find attribute %r in %r." % (name, module)) from None
    if called:
        try:
            app = app(*args, **kwargs)
        except TypeError as e:
            if _called_with_wrong_args(app):
                raise AppImportError("Error while loading the app: %s" % e) from e
            raise
    if app is None:
        raise AppImportError("Failed to find application object: %r is None." % name)
    if not callable(app):
        raise AppImportError("Application object must be callable.")
    return app


def load_paste(path, global_conf=()):
    """A PasteDeploy app (Gunicorn's --paste FILE[#name]), with raw_paste_global_conf KEY=VALUE as [DEFAULT]s."""
    try:
        from paste.deploy import loadapp
    except ImportError:
        raise AppImportError("--paste needs PasteDeploy (Debian: python3-pastedeploy)") from None
    path, _, name = path.partition("#")
    path = os.path.abspath(path)
    defaults = dict(kv.split("=", 1) for kv in global_conf)
    return loadapp("config:" + path, name=name or None, relative_to=os.path.dirname(path), global_conf=defaults)


def _names_module(missing, module):
    """True if the missing module is `module` itself or one of its parent packages ('a' or 'a.b' for 'a.b.c').
    A plain ImportError ("cannot import name") always comes from inside an existing module."""
    return missing is not None and (module == missing or module.startswith(missing + "."))


def _called_with_wrong_args(f):
    """True if the last TypeError came from calling `f` itself rather than from inside it."""
    tb = sys.exc_info()[2]
    try:
        while tb is not None:
            if tb.tb_frame.f_code is getattr(f, "__code__", None):
                return False
            tb = tb.tb_next
        return True
    finally:
        del tb


def format_error(exc):
    """The one-line reason and, for unexpected errors, the traceback."""
    if isinstance(exc, AppImportError):
        return str(exc), ""
    import traceback
    return "%s: %s" % (type(exc).__name__, exc), "".join(traceback.format_exception(exc))
