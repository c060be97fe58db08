// `_gcorn.CallbackQueue` and `_gcorn.callback`: gevent's run_callback FIFO for gcorn.gevent.loop, in C++ because it
// is the hot path of every cooperative yield (gevent.sleep(0), spawn, switching through an Event): libev's loop
// runs it in Cython, and in Python it made gcorn's loop 0.73x libev's speed on sleep(0).
//
// Semantics are gevent's (gevent/_ffi/callback.py, libev/callbacks.c gevent_call): a callback is truthy while queued
// and while it runs (args not None), pending while queued (callback not None); run() calls them in FIFO order,
// including those queued meanwhile, hands an exception to the loop's handle_error, and stops after a switch
// interval so the loop can poll (test__sleep0).
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <ctime>
#include <deque>

namespace gcorn::py {
namespace {

struct callback_object {
    PyObject_HEAD
    PyObject* callback;  // None once it started running, or once stopped
    PyObject* args;      // None once it ran, or once stopped
};

PyObject* callback_stop(PyObject* self, PyObject*) {
    auto* cb = reinterpret_cast<callback_object*>(self);
    Py_INCREF(Py_None);
    Py_SETREF(cb->callback, Py_None);
    Py_INCREF(Py_None);
    Py_SETREF(cb->args, Py_None);
    Py_RETURN_NONE;
}

PyObject* callback_pending(PyObject* self, void*) {
    return PyBool_FromLong(reinterpret_cast<callback_object*>(self)->callback != Py_None);
}

int callback_bool(PyObject* self) { return reinterpret_cast<callback_object*>(self)->args != Py_None; }

void callback_dealloc(PyObject* self) {
    auto* cb = reinterpret_cast<callback_object*>(self);
    PyObject_GC_UnTrack(self);
    Py_CLEAR(cb->callback);
    Py_CLEAR(cb->args);
    Py_TYPE(self)->tp_free(self);
}

int callback_traverse(PyObject* self, visitproc visit, void* arg) {
    auto* cb = reinterpret_cast<callback_object*>(self);
    Py_VISIT(cb->callback);
    Py_VISIT(cb->args);
    return 0;
}

int callback_clear(PyObject* self) {
    auto* cb = reinterpret_cast<callback_object*>(self);
    Py_CLEAR(cb->callback);
    Py_CLEAR(cb->args);
    return 0;
}

PyMemberDef callback_members[] = {
    {"callback", T_OBJECT, offsetof(callback_object, callback), 0, "the function, None once started or stopped"},
    {"args", T_OBJECT, offsetof(callback_object, args), 0, "its arguments, None once run or stopped"},
    {nullptr, 0, 0, 0, nullptr},
};

PyMethodDef callback_methods[] = {
    {"stop", callback_stop, METH_NOARGS, "Cancel it if it has not run."},
    {"close", callback_stop, METH_NOARGS, "Cancel it if it has not run."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef callback_getset[] = {
    {"pending", callback_pending, nullptr, "queued and not started", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyNumberMethods callback_number = {};

PyTypeObject callback_type = [] {
    PyTypeObject t{PyVarObject_HEAD_INIT(nullptr, 0)};
    t.tp_name = "_gcorn.callback";
    t.tp_basicsize = sizeof(callback_object);
    t.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC;
    t.tp_doc = "What loop.run_callback returns (gevent's ICallback).";
    t.tp_dealloc = callback_dealloc;
    t.tp_traverse = callback_traverse;
    t.tp_clear = callback_clear;
    t.tp_members = callback_members;
    t.tp_methods = callback_methods;
    t.tp_getset = callback_getset;
    callback_number.nb_bool = callback_bool;
    t.tp_as_number = &callback_number;
    return t;
}();

struct queue_object {
    PyObject_HEAD
    std::deque<PyObject*>* items;  // owned references to callback objects
    PyObject* on_error;            // handle_error(context, type, value, tb)
    PyObject* update_now;          // called every `check_every` callbacks
};

constexpr int check_every = 50;

double monotonic() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

int queue_init(PyObject* self, PyObject* args, PyObject*) {
    auto* q = reinterpret_cast<queue_object*>(self);
    PyObject *on_error, *update_now;
    if (!PyArg_ParseTuple(args, "OO", &on_error, &update_now)) return -1;
    q->items = new std::deque<PyObject*>();
    Py_INCREF(on_error);
    Py_XSETREF(q->on_error, on_error);
    Py_INCREF(update_now);
    Py_XSETREF(q->update_now, update_now);
    return 0;
}

void queue_clear_items(queue_object* q) {
    if (!q->items) return;
    while (!q->items->empty()) {
        PyObject* cb = q->items->front();
        q->items->pop_front();
        Py_DECREF(cb);
    }
}

void queue_dealloc(PyObject* self) {
    auto* q = reinterpret_cast<queue_object*>(self);
    PyObject_GC_UnTrack(self);
    queue_clear_items(q);
    delete q->items;
    Py_CLEAR(q->on_error);
    Py_CLEAR(q->update_now);
    Py_TYPE(self)->tp_free(self);
}

int queue_traverse(PyObject* self, visitproc visit, void* arg) {
    auto* q = reinterpret_cast<queue_object*>(self);
    if (q->items)
        for (PyObject* cb : *q->items) Py_VISIT(cb);
    Py_VISIT(q->on_error);
    Py_VISIT(q->update_now);
    return 0;
}

int queue_gc_clear(PyObject* self) {
    auto* q = reinterpret_cast<queue_object*>(self);
    queue_clear_items(q);
    Py_CLEAR(q->on_error);
    Py_CLEAR(q->update_now);
    return 0;
}

// append(func, *args) -> callback
PyObject* queue_append(PyObject* self, PyObject* const* argv, Py_ssize_t n) {
    auto* q = reinterpret_cast<queue_object*>(self);
    if (n < 1) {
        PyErr_SetString(PyExc_TypeError, "run_callback(func, *args)");
        return nullptr;
    }
    PyObject* args = PyTuple_New(n - 1);
    if (!args) return nullptr;
    for (Py_ssize_t i = 1; i < n; ++i) {
        Py_INCREF(argv[i]);
        PyTuple_SET_ITEM(args, i - 1, argv[i]);
    }
    auto* cb = PyObject_GC_New(callback_object, &callback_type);
    if (!cb) {
        Py_DECREF(args);
        return nullptr;
    }
    Py_INCREF(argv[0]);
    cb->callback = argv[0];
    cb->args = args;
    PyObject_GC_Track(cb);
    Py_INCREF(cb);  // the queue's reference
    q->items->push_back(reinterpret_cast<PyObject*>(cb));
    return reinterpret_cast<PyObject*>(cb);
}

// The loop's handle_error(cb, type, value, tb) for the exception being raised; never raises itself.
void report(queue_object* q, PyObject* cb) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject* result = PyObject_CallFunctionObjArgs(q->on_error, cb, type ? type : Py_None, value ? value : Py_None,
                                                    tb ? tb : Py_None, nullptr);
    if (result) Py_DECREF(result);
    else PyErr_WriteUnraisable(q->on_error);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

// run(switch_interval) -> True if the queue emptied, False if the interval passed first (the loop polls, then
// comes back). Callbacks queued meanwhile run too.
PyObject* queue_run(PyObject* self, PyObject* arg) {
    auto* q = reinterpret_cast<queue_object*>(self);
    double budget = PyFloat_AsDouble(arg);
    if (budget == -1.0 && PyErr_Occurred()) return nullptr;
    double deadline = -1;
    int count = check_every;
    while (!q->items->empty()) {
        auto* cb = reinterpret_cast<callback_object*>(q->items->front());
        q->items->pop_front();
        PyObject* func = cb->callback;
        PyObject* args = cb->args;
        if (func != Py_None && args != Py_None) {
            // callback -> None on entry (pending False); args -> None on exit (falsy): gevent_call's order
            cb->callback = Py_None;
            Py_INCREF(Py_None);
            Py_INCREF(args);  // the callback may stop itself (args -> None) while it runs
            PyObject* result = PyObject_Call(func, args, nullptr);
            if (result) Py_DECREF(result);
            else report(q, reinterpret_cast<PyObject*>(cb));
            Py_DECREF(func);
            Py_DECREF(args);
            Py_INCREF(Py_None);
            Py_SETREF(cb->args, Py_None);
        }
        Py_DECREF(cb);
        if (--count == 0) {
            count = check_every;
            PyObject* r = PyObject_CallNoArgs(q->update_now);
            if (!r) return nullptr;
            Py_DECREF(r);
            double now = monotonic();
            if (deadline < 0) deadline = now + budget;
            else if (now > deadline) Py_RETURN_FALSE;
        }
    }
    Py_RETURN_TRUE;
}

PyObject* queue_clear(PyObject* self, PyObject*) {
    queue_clear_items(reinterpret_cast<queue_object*>(self));
    Py_RETURN_NONE;
}

Py_ssize_t queue_len(PyObject* self) {
    auto* q = reinterpret_cast<queue_object*>(self);
    return q->items ? Py_ssize_t(q->items->size()) : 0;
}

PyMethodDef queue_methods[] = {
    {"append", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(queue_append)), METH_FASTCALL,
     "append(func, *args) -> callback"},
    {"run", queue_run, METH_O, "run(switch_interval) -> True if every queued callback ran"},
    {"clear", queue_clear, METH_NOARGS, "Drop every queued callback."},
    {nullptr, nullptr, 0, nullptr},
};

PySequenceMethods queue_sequence = {};

PyTypeObject queue_type = [] {
    PyTypeObject t{PyVarObject_HEAD_INIT(nullptr, 0)};
    t.tp_name = "_gcorn.CallbackQueue";
    t.tp_basicsize = sizeof(queue_object);
    t.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC;
    t.tp_doc = "CallbackQueue(handle_error, update_now): gevent's run_callback FIFO.";
    t.tp_dealloc = queue_dealloc;
    t.tp_traverse = queue_traverse;
    t.tp_clear = queue_gc_clear;
    t.tp_methods = queue_methods;
    t.tp_init = queue_init;
    t.tp_new = PyType_GenericNew;
    queue_sequence.sq_length = queue_len;
    t.tp_as_sequence = &queue_sequence;
    return t;
}();

}  // namespace

// Adds CallbackQueue and callback to the module; -1 with an exception set on failure.
int add_callback_types(PyObject* module) {
    if (PyType_Ready(&callback_type) < 0 || PyType_Ready(&queue_type) < 0) return -1;
    Py_INCREF(&callback_type);
    if (PyModule_AddObject(module, "callback", reinterpret_cast<PyObject*>(&callback_type)) < 0) return -1;
    Py_INCREF(&queue_type);
    if (PyModule_AddObject(module, "CallbackQueue", reinterpret_cast<PyObject*>(&queue_type)) < 0) return -1;
    return 0;
}

}  // namespace gcorn::py
