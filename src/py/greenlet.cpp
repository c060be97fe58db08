#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <greenlet/greenlet.h>

#include "py/greenlet.hpp"

namespace gcorn::py {
namespace {
object switched(PyObject* r, python_error* error) {
    if (r) return object::steal(r);
    *error = python_error();  // fetch what was raised into us
    return {};
}
}  // namespace

void greenlet_import() {
    if (_PyGreenlet_API) return;
    PyGreenlet_Import();
    if (!_PyGreenlet_API) throw python_error();
}

object greenlet_current() { return object::steal(reinterpret_cast<PyObject*>(PyGreenlet_GetCurrent())); }

object greenlet_new(const object& run, const object& parent) {
    auto* g = PyGreenlet_New(run.ptr(), reinterpret_cast<PyGreenlet*>(parent.ptr()));
    if (!g) throw python_error();
    return object::steal(reinterpret_cast<PyObject*>(g));
}

object greenlet_switch(const object& g, python_error* error) {
    return switched(PyGreenlet_Switch(reinterpret_cast<PyGreenlet*>(g.ptr()), nullptr, nullptr), error);
}

object greenlet_kill(const object& g, python_error* error) {
    return switched(PyGreenlet_Throw(reinterpret_cast<PyGreenlet*>(g.ptr()), PyExc_GreenletExit, nullptr, nullptr),
                    error);
}

object greenlet_throw(const object& g, const object& exception, python_error* error) {
    auto* type = reinterpret_cast<PyObject*>(Py_TYPE(exception.ptr()));
    return switched(PyGreenlet_Throw(reinterpret_cast<PyGreenlet*>(g.ptr()), type, exception.ptr(), nullptr), error);
}

bool greenlet_started(const object& g) { return PyGreenlet_STARTED(reinterpret_cast<PyGreenlet*>(g.ptr())); }

bool greenlet_dead(const object& g) {
    auto* p = reinterpret_cast<PyGreenlet*>(g.ptr());
    return PyGreenlet_STARTED(p) && !PyGreenlet_ACTIVE(p);
}

bool is_greenlet_exit(const python_error& e) {
    return _PyGreenlet_API && e.is_instance_of(object::borrow(PyExc_GreenletExit));  // no hub: never
}

}  // namespace gcorn::py
