// `_gcorn` as a Python extension module (the embedded binary registers it as a builtin instead), so gcorn's loop
// serves gevent programs outside the server: GEVENT_LOOP=gcorn.gevent.loop python3 app.py.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "py/object.hpp"

namespace gcorn::py {
PyObject* init_gcorn_module();
// Adds the hub's functions to the module; defined by the extension's composition (src/gcorn_ext.cpp).
void install_extension_functions();
}  // namespace gcorn::py

extern "C" PyMODINIT_FUNC PyInit__gcorn() {
    PyObject* module = gcorn::py::init_gcorn_module();
    if (!module) return nullptr;
    // The installers look the module up by name, as they do in the binary, so it is findable while it initializes.
    if (PyDict_SetItemString(PyImport_GetModuleDict(), "_gcorn", module) != 0) {
        Py_DECREF(module);
        return nullptr;
    }
    try {
        gcorn::py::install_extension_functions();
    } catch (const gcorn::py::python_error& e) {
        e.restore();
        Py_DECREF(module);
        return nullptr;
    }
    return module;
}
