// socket.socket objects over descriptors whose lifetime gcorn decides (environ["gunicorn.socket"]). One borrowing
// the stdlib's own class is made and released without running Python-level __init__ and close(): once per
// connection, those frames cost more than the rest of a small request's work in gcorn (the sync class serves one
// request per connection). Any other class (the async class's cooperative socket) is called as usual.
#pragma once
#include "py/object.hpp"

namespace gcorn::py {

// cls(-1, type, 0, fd): a socket owning `fd`. Throws python_error; then `fd` is still the caller's to close.
// A subclass of the stdlib's class that adds no __init__ and no slots (gcorn._wsgi.borrowed_socket_class) is made
// without running Python code.
object make_socket(const object& cls, int fd, int type);

// Detaches a socket from make_socket from its descriptor (which stays open: it is the caller's) and drops the
// reference. If the app holds the object too, it is closed first, so it reads as closed (and a greenlet parked on
// it wakes); either way it no longer refers to the descriptor. Errors are cleared.
void release_socket(object& sock) noexcept;

// Closes a socket from make_socket (one over a dup()) and drops the reference; errors are cleared (nothing could be
// done about them).
// PRECONDITION: GIL held.
void close_socket(object& sock) noexcept;

}  // namespace gcorn::py
