// socket.socket objects over descriptors whose lifetime gcorn decides (environ["gunicorn.socket"]). The stdlib's
// own class is made and closed without running its Python-level __init__ and close(): once per connection, those
// two frames cost more than the rest of a small request's work in gcorn (the sync class serves one request per
// connection). Any other class (the async class's cooperative socket) is called as usual.
#pragma once
#include "py/object.hpp"

namespace gcorn::py {

// cls(-1, type, 0, fd): a socket owning `fd`. Throws python_error; then `fd` is still the caller's to close.
object make_socket(const object& cls, int fd, int type);

// Closes a socket from make_socket and drops the reference; errors are cleared (nothing could be done about them).
// PRECONDITION: GIL held.
void close_socket(object& sock) noexcept;

}  // namespace gcorn::py
