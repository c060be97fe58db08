// Python objects whose behaviour is C++: a callable (start_response) and a raw reader (wsgi.input).
// They do not own their context; `detach` makes any later use raise instead of touching freed memory.
#pragma once
#include <cstddef>
#include <span>

#include "py/object.hpp"

namespace gcorn::py {

using native_fn = object (*)(void* ctx, const object& args, const object& kwargs);
object native_function(native_fn fn, void* ctx);

// readinto(buffer) -> int, readable() -> True; for io.BufferedReader. `read` may throw python_error.
using read_fn = size_t (*)(void* ctx, std::span<char> into);
object native_reader(read_fn fn, void* ctx);

void detach(const object& native);

}  // namespace gcorn::py
