// How socket_stream and tls_stream wait for their socket: the Waiter they are built with (poll(2) with the GIL
// released for sync and gthread, a parked greenlet for async: DESIGN §2, only how a wait happens differs).
#pragma once
#include "http/byte_stream.hpp"

namespace gcorn::worker {

// Waiter: `bool wait(int fd, bool writable, http::deadline)`, called after EAGAIN, returns false on timeout and
// throws http::stream_error if the wait cannot happen; `void yield()` lets other work run. Optional:
// `void note_read(bool drained)` hears what each read saw, and `bool wait_readable(int fd, http::deadline)` waits
// with no read just before it, and `hub::send_ring* sends()` / `hub::edge_socket* socket` let a response's last
// bytes leave with the hub's round (hub/send_ring).
template <class Waiter>
void note_read(Waiter& w, bool drained) {
    if constexpr (requires { w.note_read(drained); }) w.note_read(drained);
}

template <class Waiter>
bool wait_for_input(Waiter& w, int fd, http::deadline until) {
    if constexpr (requires { w.wait_readable(fd, until); }) return w.wait_readable(fd, until);
    else return w.wait(fd, false, until);
}

}  // namespace gcorn::worker
