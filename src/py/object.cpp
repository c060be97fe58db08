#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "py/object.hpp"

#include <vector>

#include "py/gil.hpp"

namespace gcorn::py {
namespace {
// Every wrapper below: call, check, throw python_error (the exception is fetched from the interpreter).
object checked(PyObject* p) {
    if (!p) throw python_error();
    return object::steal(p);
}
void check(int rc) {
    if (rc < 0) throw python_error();
}
}  // namespace

object::object(const object& o) noexcept : p_(o.p_) { Py_XINCREF(p_); }
object::~object() { Py_XDECREF(p_); }
object object::steal(PyObject* p) noexcept {
    object o;
    o.p_ = p;
    return o;
}
object object::borrow(PyObject* p) noexcept {
    Py_XINCREF(p);
    return steal(p);
}

object object::attr(const char* name) const { return checked(PyObject_GetAttrString(p_, name)); }
object object::attr(const object& name) const { return checked(PyObject_GetAttr(p_, name.ptr())); }

object object::attr_or_null(const object& name) const {
    PyObject* out = nullptr;
    // _PyObject_LookupAttr skips building an AttributeError (DESIGN §3.1 (13)); public as of 3.13.
    if (_PyObject_LookupAttr(p_, name.ptr(), &out) < 0) throw python_error();
    return steal(out);
}

object object::operator()(std::initializer_list<object> args) const {
    constexpr size_t on_stack = 8;  // every call gcorn makes; more arguments take a heap array
    PyObject* small[on_stack];
    std::vector<PyObject*> large(args.size() > on_stack ? args.size() : 0);
    PyObject** argv = large.empty() ? small : large.data();
    size_t n = 0;
    for (auto& a : args) argv[n++] = a.ptr();
    return checked(PyObject_Vectorcall(p_, argv, n, nullptr));
}

python_error::python_error() {
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    if (!t) return;  // what() says "unknown Python error": nothing allocated for the switch that did not fail
    PyErr_NormalizeException(&t, &v, &tb);
    if (tb) PyException_SetTraceback(v, tb);
    type_ = object::steal(t), value_ = object::steal(v), tb_ = object::steal(tb);
    PyObject* s = PyObject_Str(v);
    auto* tname = reinterpret_cast<PyTypeObject*>(t)->tp_name;
    summary_ = tname;
    if (s) {
        if (const char* u = PyUnicode_AsUTF8(s); u && *u) summary_ += std::string(": ") + u;
        Py_DECREF(s);
    }
    PyErr_Clear();
}

python_error::python_error(kind k, const std::string& message) : summary_(message) {
    PyObject* greenlet_exit = nullptr;
    if (k == kind::greenlet_exit) {
        // greenlet.GreenletExit (its module is always imported once a hub exists)
        auto mod = import("greenlet");
        greenlet_exit = mod.attr("GreenletExit").release();
        Py_DECREF(greenlet_exit);  // the module keeps it alive
    }
    PyObject* t = k == kind::greenlet_exit     ? greenlet_exit
                  : k == kind::timeout_error   ? PyExc_TimeoutError
                  : k == kind::type_error      ? PyExc_TypeError
                  : k == kind::value_error     ? PyExc_ValueError
                  : k == kind::assertion_error ? PyExc_AssertionError
                  : k == kind::os_error        ? PyExc_OSError
                                               : PyExc_RuntimeError;
    type_ = object::borrow(t);
    value_ = checked(PyObject_CallOneArg(t, str(message).ptr()));
}

python_error::python_error(const object& exception)
    : type_(object::borrow(reinterpret_cast<PyObject*>(Py_TYPE(exception.ptr())))), value_(exception),
      tb_(object::steal(PyException_GetTraceback(exception.ptr()))), summary_(str_of(exception)) {}

std::string python_error::traceback() const {
    if (!value_) return what();
    try {
        auto lines = import("traceback").attr("format_exception")({value_});
        auto text = str("").attr("join")({lines});
        return str_of(text);
    } catch (const python_error&) {
        return what();
    }
}

bool python_error::is_instance_of(const object& type) const {
    return value_ && PyObject_IsInstance(value_.ptr(), type.ptr()) == 1;
}

void python_error::restore() const {
    PyErr_Restore(object(type_).release(), object(value_).release(), object(tb_).release());
}

object none() { return object::borrow(Py_None); }
object boolean(bool v) { return object::borrow(v ? Py_True : Py_False); }
object integer(long long v) { return checked(PyLong_FromLongLong(v)); }
object str(std::string_view s) { return checked(PyUnicode_DecodeUTF8(s.data(), Py_ssize_t(s.size()), "surrogateescape")); }
object str_latin1(std::string_view s) { return checked(PyUnicode_DecodeLatin1(s.data(), Py_ssize_t(s.size()), nullptr)); }
object floating(double v) { return checked(PyFloat_FromDouble(v)); }
bool is_imported(const char* module) {
    PyObject* m = PyDict_GetItemString(PyImport_GetModuleDict(), module);  // borrowed; no error set
    return m != nullptr && m != Py_None;
}
object list() { return checked(PyList_New(0)); }
void append(const object& list, const object& item) {
    if (PyList_Append(list.ptr(), item.ptr()) != 0) throw python_error();
}
object bytes(std::string_view s) { return checked(PyBytes_FromStringAndSize(s.data(), Py_ssize_t(s.size()))); }
object dict() { return checked(PyDict_New()); }
object import(const char* module) { return checked(PyImport_ImportModule(module)); }

object tuple(std::initializer_list<object> items) {
    auto t = checked(PyTuple_New(Py_ssize_t(items.size())));
    Py_ssize_t i = 0;
    for (auto& it : items) PyTuple_SET_ITEM(t.ptr(), i++, object(it).release());
    return t;
}

object interned(const char* s) {
    PyObject* p = PyUnicode_InternFromString(s);
    if (!p) throw python_error();
    return object::steal(p);
}

void intern(object& s) {
    PyObject* p = s.release();
    PyUnicode_InternInPlace(&p);  // steals p and gives back a new reference (maybe another object)
    s = object::steal(p);
}

void set_item(const object& m, const object& k, const object& v) {
    check(PyDict_CheckExact(m.ptr()) ? PyDict_SetItem(m.ptr(), k.ptr(), v.ptr()) : PyObject_SetItem(m.ptr(), k.ptr(), v.ptr()));
}

object get_item(const object& d, const object& k) {
    PyObject* v = PyDict_GetItemWithError(d.ptr(), k.ptr());
    if (!v && PyErr_Occurred()) throw python_error();
    return object::borrow(v);
}
void del_item(const object& d, const object& k) {
    if (PyDict_DelItem(d.ptr(), k.ptr()) < 0) throw python_error();
}

bool is_bytes(const object& o) { return PyBytes_Check(o.ptr()); }
std::string_view bytes_view(const object& o) { return {PyBytes_AS_STRING(o.ptr()), size_t(PyBytes_GET_SIZE(o.ptr()))}; }
bool is_str(const object& o) { return PyUnicode_Check(o.ptr()); }

std::optional<std::string_view> latin1_view(const object& s) {
    if (!PyUnicode_Check(s.ptr())) return std::nullopt;
    if (PyUnicode_KIND(s.ptr()) == PyUnicode_1BYTE_KIND)  // already latin-1 code points: no encoding step
        return std::string_view(static_cast<const char*>(PyUnicode_DATA(s.ptr())), size_t(PyUnicode_GET_LENGTH(s.ptr())));
    return std::nullopt;
}

std::optional<std::string> latin1(const object& s) {
    auto v = latin1_view(s);
    return v ? std::optional<std::string>(*v) : std::nullopt;
}

std::string str_of(const object& o) {
    auto s = checked(PyObject_Str(o.ptr()));
    Py_ssize_t n = 0;
    const char* u = PyUnicode_AsUTF8AndSize(s.ptr(), &n);
    if (!u) throw python_error();
    return {u, size_t(n)};
}

bool is_list_or_tuple(const object& o) { return PyList_CheckExact(o.ptr()) || PyTuple_CheckExact(o.ptr()); }
bool is_none(const object& o) { return o.ptr() == Py_None; }
bool is_exception(const object& o) { return PyExceptionInstance_Check(o.ptr()); }
const char* type_name(const object& o) { return Py_TYPE(o.ptr())->tp_name; }
object type_of(const object& o) { return object::borrow(reinterpret_cast<PyObject*>(Py_TYPE(o.ptr()))); }
object copy_dict(const object& d) { return checked(PyDict_Copy(d.ptr())); }
uint64_t dict_version(const object& d) noexcept {
#if PY_VERSION_HEX < 0x030C0000
    return reinterpret_cast<PyDictObject*>(d.ptr())->ma_version_tag;
#else
    return 0;  // deprecated by PEP 699: nothing is ever known unchanged
#endif
}
bool unshared_and_unchanged(const object& d, uint64_t version, size_t references) noexcept {
    return version != 0 && size_t(Py_REFCNT(d.ptr())) == references && dict_version(d) == version;
}
size_t size(const object& o) {
    if (PyTuple_CheckExact(o.ptr())) return size_t(PyTuple_GET_SIZE(o.ptr()));  // start_response's arguments
    if (PyList_CheckExact(o.ptr())) return size_t(PyList_GET_SIZE(o.ptr()));    // and its headers
    Py_ssize_t n = PyObject_Size(o.ptr());
    if (n < 0) throw python_error();
    return size_t(n);
}
object item(const object& seq, size_t i) {
    // The usual tuple and list (start_response's arguments and headers) without the generic protocol.
    PyObject* p = seq.ptr();
    if (PyTuple_CheckExact(p) && Py_ssize_t(i) < PyTuple_GET_SIZE(p)) return object::borrow(PyTuple_GET_ITEM(p, Py_ssize_t(i)));
    if (PyList_CheckExact(p) && Py_ssize_t(i) < PyList_GET_SIZE(p)) return object::borrow(PyList_GET_ITEM(p, Py_ssize_t(i)));
    return checked(PySequence_GetItem(p, Py_ssize_t(i)));
}
object iter(const object& o) { return checked(PyObject_GetIter(o.ptr())); }
object next(const object& it) {
    PyObject* v = PyIter_Next(it.ptr());
    if (!v && PyErr_Occurred()) throw python_error();
    return object::steal(v);
}
double to_double(const object& o) {
    double v = PyFloat_AsDouble(o.ptr());
    if (v == -1.0 && PyErr_Occurred()) throw python_error();
    return v;
}
void set_attr(const object& o, const char* name, const object& value) {
    check(PyObject_SetAttrString(o.ptr(), name, value.ptr()));
}
object call_tuple(const object& fn, const object& args) { return checked(PyObject_Call(fn.ptr(), args.ptr(), nullptr)); }
long long to_integer(const object& o) {
    long long v = PyLong_AsLongLong(o.ptr());
    if (v == -1 && PyErr_Occurred()) throw python_error();
    return v;
}
bool callable(const object& o) { return PyCallable_Check(o.ptr()); }
bool truthy(const object& o) {
    int r = PyObject_IsTrue(o.ptr());
    check(r);
    return r == 1;
}

bool gil_held() noexcept { return PyGILState_Check() != 0; }

void join_without_gil(std::thread& t) {
    if (!gil_held()) return t.join();
    gil_release unlocked;
    t.join();
}

gil_release::gil_release() noexcept : state_(PyEval_SaveThread()) {}
gil_release::~gil_release() { PyEval_RestoreThread(state_); }
gil_release::hold::hold(gil_release& outer) noexcept : outer_(outer) { PyEval_RestoreThread(outer_.state_); }
gil_release::hold::~hold() { outer_.state_ = PyEval_SaveThread(); }

gil_acquire::gil_acquire() noexcept : state_(int(PyGILState_Ensure())) {}
gil_acquire::~gil_acquire() { PyGILState_Release(PyGILState_STATE(state_)); }

context_scope::context_scope() : ctx_(PyContext_New()) {
    if (!ctx_ || PyContext_Enter(ctx_) < 0) {
        Py_XDECREF(ctx_);
        throw python_error();
    }
}
context_scope::~context_scope() {
    PyContext_Exit(ctx_);
    Py_DECREF(ctx_);
}

}  // namespace gcorn::py

namespace gcorn::py {

unsigned long thread_ident() noexcept { return PyThread_get_thread_ident(); }

bool raise_in_thread(unsigned long ident, const object& exception_type) {
    return PyThreadState_SetAsyncExc(ident, exception_type.ptr()) == 1;
}

}  // namespace gcorn::py
