// Python objects whose behaviour is C++: a callable (start_response) and a raw reader (wsgi.input).
// They do not own their context; `recycle` makes any later use raise instead of touching freed memory.
#pragma once
#include <cstddef>
#include <span>

#include "py/object.hpp"

namespace gcorn::py {

// The arguments of one call into a native function, as the interpreter passes them (vectorcall: no tuple, no
// dict). Borrowed for the call's duration.
class call_args {
public:
    call_args(PyObject* const* args, size_t count, PyObject* keyword_names) noexcept
        : args_(args), count_(count), keyword_names_(keyword_names) {}
    size_t size() const noexcept { return count_; }  // positional arguments
    object operator[](size_t i) const;               // TypeError (python_error) past size()
    object keyword(const object& name) const;        // a keyword argument by its (interned) name, or null
    bool has_keywords() const noexcept { return keyword_names_ != nullptr; }
    object tuple_from(size_t first) const;           // the positional arguments from `first` on

private:
    PyObject* const* args_;
    size_t count_;
    PyObject* keyword_names_;  // a tuple of str, their values after the positional ones; null if none
};

using native_fn = object (*)(void* ctx, const call_args& args);
object native_function(native_fn fn, void* ctx);

// readinto(buffer) -> int, readable() -> True; for io.BufferedReader. `read` may throw python_error.
using read_fn = size_t (*)(void* ctx, std::span<char> into);
object native_reader(read_fn fn, void* ctx);

// Detaches `native` (a later call raises instead of touching its context); when the caller held its only reference,
// keeps it for a later native_function/native_reader of this thread instead of freeing it (a request makes several).
void recycle(object&& native);

}  // namespace gcorn::py
