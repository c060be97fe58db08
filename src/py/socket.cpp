#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "py/socket.hpp"

#include <cstring>

namespace gcorn::py {
namespace {

// Lib/socket.py's class socket(_socket.socket), 3.11: __init__ is _socket.socket.__init__ then `_io_refs = 0` and
// `_closed = False` (its two __slots__ besides __weakref__); close() sets `_closed` and, with no makefile() open,
// calls _socket.socket.close. Recognised by name and base once, then by identity (it lives as long as the module).
bool is_stdlib_socket(PyObject* cls) {
    static PyObject* known = nullptr;
    if (cls == known) return true;
    if (known || !PyType_Check(cls)) return false;
    auto* t = reinterpret_cast<PyTypeObject*>(cls);
    if (std::strcmp(t->tp_name, "socket") != 0 || !t->tp_base || std::strcmp(t->tp_base->tp_name, "_socket.socket") != 0)
        return false;
    PyObject* module = PyObject_GetAttrString(cls, "__module__");
    bool stdlib = module && PyUnicode_Check(module) && PyUnicode_CompareWithASCIIString(module, "socket") == 0;
    Py_XDECREF(module);
    PyErr_Clear();
    if (stdlib) known = Py_NewRef(cls);  // kept for the process, like the module itself
    return stdlib;
}

PyObject* interned_name(const char* s) {
    PyObject* o = PyUnicode_InternFromString(s);
    if (!o) throw python_error();
    return o;  // immortal for the process
}

}  // namespace

// For a subclass of the stdlib's class with no __init__ and no slots of its own (gcorn._wsgi.borrowed_socket_class
// over it), the stdlib class: the object is made by tp_new, the stdlib __init__'s two attributes and
// _socket.socket's own init. Null for any other class.
PyTypeObject* made_natively(PyObject* cls) {
    if (!PyType_Check(cls)) return nullptr;
    auto* t = reinterpret_cast<PyTypeObject*>(cls);
    static PyObject* init = interned_name("__init__");
    if (!t->tp_base || !is_stdlib_socket(reinterpret_cast<PyObject*>(t->tp_base)) || t->tp_basicsize != t->tp_base->tp_basicsize ||
        PyDict_GetItemWithError(t->tp_dict, init))
        return PyErr_Clear(), nullptr;
    return t->tp_base;
}

object make_socket(const object& cls, int fd, int type) {
    auto* stdlib = made_natively(cls.ptr());
    if (!stdlib) return cls({integer(-1), integer(type), integer(0), integer(fd)});
    static PyObject* io_refs = interned_name("_io_refs");
    static PyObject* closed = interned_name("_closed");
    auto* t = reinterpret_cast<PyTypeObject*>(cls.ptr());
    auto args = object::steal(Py_BuildValue("(iiii)", -1, type, 0, fd));
    if (!args) throw python_error();
    auto sock = object::steal(t->tp_new(t, args.ptr(), nullptr));  // no descriptor yet
    if (!sock) throw python_error();
    auto zero = integer(0);
    if (PyObject_SetAttr(sock.ptr(), io_refs, zero.ptr()) < 0 || PyObject_SetAttr(sock.ptr(), closed, Py_False) < 0 ||
        stdlib->tp_base->tp_init(sock.ptr(), args.ptr(), nullptr) < 0)  // the last step: from here it owns `fd`
        throw python_error();
    return sock;
}

void close_socket(object& sock) noexcept {
    if (!sock) return;
    PyObject* r = PyObject_CallMethod(sock.ptr(), "close", nullptr);
    if (!r) PyErr_Clear();
    Py_XDECREF(r);
    sock = object();
}

void release_socket(object& sock) noexcept {
    if (!sock) return;
    if (Py_REFCNT(sock.ptr()) > 1) {  // the app holds it too: it must read as closed
        PyObject* r = PyObject_CallMethod(sock.ptr(), "close", nullptr);
        if (!r) PyErr_Clear();
        Py_XDECREF(r);
    }
    // _socket.socket.detach itself, whatever the class: close() above may have left the descriptor attached (a
    // makefile() still open defers it), and nothing may refer to it once the caller closes it.
    static PyObject* detach = [] {
        PyObject* raw = PyImport_ImportModule("_socket");
        PyObject* cls = raw ? PyObject_GetAttrString(raw, "socket") : nullptr;
        PyObject* method = cls ? PyObject_GetAttrString(cls, "detach") : nullptr;
        Py_XDECREF(cls);
        Py_XDECREF(raw);
        return method;  // kept for the process
    }();
    PyObject* r = detach ? PyObject_CallOneArg(detach, sock.ptr()) : nullptr;
    if (!r) PyErr_Clear();
    Py_XDECREF(r);
    sock = object();
}

}  // namespace gcorn::py
