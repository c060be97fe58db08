// The `_gcorn` builtin module: what gcorn's Python side calls into. Registered before Py_Initialize.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <spdlog/spdlog.h>

namespace gcorn::py {
namespace {

// _gcorn.log(level, message): level is logging's number (10 debug .. 50 critical).
PyObject* log(PyObject*, PyObject* args) {
    int level = 0;
    const char* message = nullptr;
    Py_ssize_t n = 0;
    if (!PyArg_ParseTuple(args, "is#", &level, &message, &n)) return nullptr;
    auto lvl = level >= 50 ? spdlog::level::critical
             : level >= 40 ? spdlog::level::err
             : level >= 30 ? spdlog::level::warn
             : level >= 20 ? spdlog::level::info
                           : spdlog::level::debug;
    spdlog::log(lvl, "{}", std::string_view(message, size_t(n)));
    Py_RETURN_NONE;
}

PyMethodDef methods[] = {
    {"log", log, METH_VARARGS, "Write a line to gcorn's error log."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_gcorn", "gcorn's native primitives.", -1, methods,
                      nullptr, nullptr, nullptr, nullptr};

}  // namespace

int add_callback_types(PyObject* module);  // callback_queue.cpp

PyObject* init_gcorn_module() {
    PyObject* m = PyModule_Create(&module);
    if (m && add_callback_types(m) < 0) Py_CLEAR(m);
    return m;
}

}  // namespace gcorn::py
