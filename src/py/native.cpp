#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include "py/native.hpp"

namespace gcorn::py {
namespace {

// One small type serves both roles: `fn` makes it callable, `read` gives it readinto().
struct native_object {
    PyObject_HEAD
    vectorcallfunc vectorcall;  // the type's tp_vectorcall_offset points here
    native_fn fn;
    read_fn read;
    void* ctx;
};

PyObject* detached() {
    PyErr_SetString(PyExc_RuntimeError, "this object belonged to a finished request");
    return nullptr;
}

// The C++ side may throw: a python_error goes back into Python as itself, anything else as RuntimeError.
template <class F>
PyObject* guarded(F&& f) {
    try {
        return f();
    } catch (const python_error& e) {
        e.restore();
    } catch (const std::exception& e) {
        PyErr_SetString(PyExc_OSError, e.what());  // e.g. the client went away under wsgi.input
    } catch (...) {
        PyErr_SetString(PyExc_RuntimeError, "unexpected C++ exception");  // never unwind into the interpreter
    }
    return nullptr;
}

PyObject* native_vectorcall(PyObject* self, PyObject* const* args, size_t nargsf, PyObject* kwnames) {
    auto* n = reinterpret_cast<native_object*>(self);
    if (!n->ctx || !n->fn) return detached();
    call_args a(args, size_t(PyVectorcall_NARGS(nargsf)), kwnames);
    return guarded([&] { return n->fn(n->ctx, a).release(); });
}

PyMemberDef native_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(native_object, vectorcall), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr},
};

PyObject* native_readinto(PyObject* self, PyObject* arg) {
    auto* n = reinterpret_cast<native_object*>(self);
    if (!n->ctx || !n->read) return detached();
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_WRITABLE) < 0) return nullptr;
    PyObject* r = guarded([&] {
        size_t got = n->read(n->ctx, std::span(static_cast<char*>(view.buf), size_t(view.len)));
        return PyLong_FromSize_t(got);
    });
    PyBuffer_Release(&view);
    return r;
}

PyObject* native_true(PyObject*, PyObject*) { Py_RETURN_TRUE; }
PyObject* native_false(PyObject*, PyObject*) { Py_RETURN_FALSE; }

PyObject* native_closed(PyObject*, void*) { Py_RETURN_FALSE; }

PyMethodDef native_methods[] = {
    {"readinto", native_readinto, METH_O, "Read body bytes into a writable buffer."},
    {"readable", native_true, METH_NOARGS, nullptr},
    {"writable", native_false, METH_NOARGS, nullptr},
    {"seekable", native_false, METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef native_getset[] = {
    {"closed", native_closed, nullptr, nullptr, nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyTypeObject* native_type() {
    static PyTypeObject* type = [] {
        static PyType_Slot slots[] = {
            {Py_tp_call, reinterpret_cast<void*>(PyVectorcall_Call)},  // a call with a tuple and a dict
            {Py_tp_members, native_members},
            {Py_tp_methods, native_methods},
            {Py_tp_getset, native_getset},
            {0, nullptr},
        };
        static PyType_Spec spec = {"gcorn.native", sizeof(native_object), 0,
                                   Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL, slots};
        return reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&spec));
    }();
    if (!type) throw python_error();
    return type;
}

// Native objects nobody else holds any more, for the next request to reuse (recycle). Per thread, as each worker
// thread makes its own; never destroyed (the interpreter may be gone when the thread ends): at most max_spare
// objects are left at exit.
constexpr size_t max_spare = 16;
struct spares {
    native_object* objects[max_spare];
    size_t count = 0;
};
thread_local spares spare;

object make(native_fn fn, read_fn read, void* ctx) {
    auto* n = spare.count ? spare.objects[--spare.count] : PyObject_New(native_object, native_type());
    if (!n) throw python_error();
    n->vectorcall = native_vectorcall;
    n->fn = fn, n->read = read, n->ctx = ctx;
    return object::steal(reinterpret_cast<PyObject*>(n));
}

}  // namespace

object call_args::operator[](size_t i) const {
    // A caller passing too few arguments (or a keyword where a position was expected) gets a TypeError, not a read
    // past the interpreter's argument vector.
    if (i >= count_)
        throw python_error(python_error::kind::type_error, "missing positional argument " + std::to_string(i + 1));
    return object::borrow(args_[i]);
}

object call_args::tuple_from(size_t first) const {
    size_t n = first < count_ ? count_ - first : 0;
    PyObject* t = PyTuple_New(Py_ssize_t(n));
    if (!t) throw python_error();
    for (size_t i = 0; i < n; ++i) PyTuple_SET_ITEM(t, Py_ssize_t(i), Py_NewRef(args_[first + i]));
    return object::steal(t);
}

object call_args::keyword(const object& name) const {
    if (!keyword_names_) return {};
    for (Py_ssize_t i = 0, n = PyTuple_GET_SIZE(keyword_names_); i < n; ++i) {
        PyObject* k = PyTuple_GET_ITEM(keyword_names_, i);
        if (k == name.ptr() || PyUnicode_Compare(k, name.ptr()) == 0) return object::borrow(args_[count_ + size_t(i)]);
    }
    return {};
}

object native_function(native_fn fn, void* ctx) { return make(fn, nullptr, ctx); }
object native_reader(read_fn fn, void* ctx) { return make(nullptr, fn, ctx); }

void recycle(object&& o) {
    if (!o || !Py_IS_TYPE(o.ptr(), native_type())) return;
    reinterpret_cast<native_object*>(o.ptr())->ctx = nullptr;  // a later call raises
    if (Py_REFCNT(o.ptr()) == 1 && spare.count < max_spare)
        spare.objects[spare.count++] = reinterpret_cast<native_object*>(o.release());
}

}  // namespace gcorn::py
