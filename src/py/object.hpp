// Python references with ownership spelled at the call site (steal/borrow), and the C-API calls the rest of
// gcorn needs as 3-line wrappers that throw python_error. src/py/ is the ONLY folder that calls Py* (DESIGN §4);
// this header does not include Python.h, so nothing else can.
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

struct _object;
using PyObject = _object;

namespace gcorn::py {

class object {
public:
    object() noexcept = default;
    object(const object& o) noexcept;
    object(object&& o) noexcept : p_(o.p_) { o.p_ = nullptr; }
    object& operator=(object o) noexcept {
        std::swap(p_, o.p_);
        return *this;
    }
    ~object();

    static object steal(PyObject* p) noexcept;   // takes over a new reference
    static object borrow(PyObject* p) noexcept;  // adds a reference to a borrowed one
    PyObject* ptr() const noexcept { return p_; }
    PyObject* release() noexcept {
        auto* p = p_;
        p_ = nullptr;
        return p;
    }
    explicit operator bool() const noexcept { return p_ != nullptr; }
    bool is(const object& o) const noexcept { return p_ == o.p_; }

    object attr(const char* name) const;               // AttributeError -> python_error
    object attr(const object& name) const;             // the same, by an interned name (no string building)
    object attr_or_null(const object& name) const;     // missing -> null, without building an AttributeError
    object operator()(std::initializer_list<object> args = {}) const;  // call

private:
    PyObject* p_ = nullptr;
};

// A Python exception, fetched from (or to be restored into) the interpreter's error indicator.
class python_error : public std::exception {
public:
    enum class kind { runtime_error, type_error, value_error, assertion_error, os_error, timeout_error, greenlet_exit };
    python_error();                             // fetches and clears the current exception
    python_error(kind k, const std::string& message);  // a new exception to raise into Python
    explicit python_error(const object& exception);    // an existing exception instance (exc_info[1])
    const char* what() const noexcept override { return summary_.empty() ? "unknown Python error" : summary_.c_str(); }
    std::string traceback() const;              // the formatted traceback, as Python prints it
    bool is_instance_of(const object& type) const;
    void restore() const;                       // sets it as the current exception again
    const object& value() const { return value_; }

private:
    object type_, value_, tb_;
    std::string summary_;
};

object none();
object boolean(bool v);
object integer(long long v);
object floating(double v);
object str(std::string_view utf8);
object str_latin1(std::string_view bytes);  // PEP 3333 "native string"
object bytes(std::string_view data);
object dict();
object tuple(std::initializer_list<object> items);
object list();
void append(const object& list, const object& item);
object import(const char* module);

// The calling thread's id as Python's threading knows it (threading.get_ident()).
unsigned long thread_ident() noexcept;
// Raises `exception_type` in thread `ident` at its next bytecode (PyThreadState_SetAsyncExc). PRECONDITION: GIL.
bool raise_in_thread(unsigned long ident, const object& exception_type);
bool is_imported(const char* module);  // in sys.modules already
object interned(const char* s);             // immortal for the process: use for environ keys
void intern(object& s);                     // replaces a str by its interned copy (cached hash, `is` compare)

void set_item(const object& mapping, const object& key, const object& value);
object get_item(const object& dict, const object& key);  // null if absent
void del_item(const object& dict, const object& key);     // PRECONDITION: present
bool is_bytes(const object& o);
std::string_view bytes_view(const object& o);  // valid while `o` lives
bool is_str(const object& o);
std::optional<std::string> latin1(const object& str);  // nullopt if not a str or not latin-1
std::optional<std::string_view> latin1_view(const object& str);  // the same, no copy: valid while `str` lives
std::string str_of(const object& o);               // str(o) as UTF-8
bool is_list_or_tuple(const object& o);
bool is_none(const object& o);
bool is_exception(const object& o);             // an exception instance (what exc_info[1] must be)
const char* type_name(const object& o);          // for error messages; valid while the type lives
object type_of(const object& o);
object copy_dict(const object& d);
// A dict's modification stamp (CPython 3.11's ma_version_tag): it changes whenever an entry is added, removed or
// given another object, and no two dicts share one. 0 where the interpreter keeps none.
uint64_t dict_version(const object& d) noexcept;
// `d` is held by exactly `references` references (the caller's own) and still has stamp `version` (never true for
// version 0).
bool unshared_and_unchanged(const object& d, uint64_t version, size_t references = 1) noexcept;
size_t size(const object& o);
object item(const object& seq, size_t i);
object iter(const object& o);
object next(const object& iterator);
object call_tuple(const object& fn, const object& args);  // fn(*args)
double to_double(const object& o);
void set_attr(const object& o, const char* name, const object& value);         // null at the end
long long to_integer(const object& o);
bool callable(const object& o);
bool truthy(const object& o);

}  // namespace gcorn::py
