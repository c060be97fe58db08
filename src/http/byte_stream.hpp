// HTTP's only view of a connection: read and write bytes with a deadline.
// Knows nothing of how a wait happens (blocking poll, pool thread or parked greenlet: DESIGN §2).
#pragma once
#include <chrono>
#include <cstddef>
#include <span>
#include <stdexcept>
#include <string_view>
#include <sys/types.h>
#include <time.h>

namespace gcorn::http {

using clock = std::chrono::steady_clock;
using deadline = clock::time_point;

// Now, on the same clock, to the kernel's last tick (1-4 ms): what a timeout of seconds is counted from. It costs a
// memory read, where clock::now() reads the clock source (on a paravirtualised VM, about as much as a small
// syscall), and a request reads it for each of its deadlines. Durations that are reported use clock::now().
inline clock::time_point coarse_now() noexcept {
    timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);  // steady_clock is CLOCK_MONOTONIC: the same time base
    return clock::time_point(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec));
}

// The peer went away or was too slow, or the worker is stopping (a greenlet killed while it waited); the
// connection is over. Expected, so logged at debug level.
struct stream_error : std::runtime_error {
    enum class kind { timeout, closed, cancelled };
    stream_error(kind k, const char* what) : std::runtime_error(what), why(k) {}
    kind why;
};

class byte_stream {
public:
    virtual ~byte_stream() = default;
    // Reads at least one byte, or returns 0 at end of stream. Throws stream_error.
    virtual size_t read_some(std::span<char> into, deadline until) = 0;
    // Writes every piece, in order, as one gathered write where possible. Throws stream_error.
    virtual void write_all(std::span<const std::string_view> pieces, deadline until) = 0;
    // The response's last bytes, on a connection that stays open: the stream may send them after the request has
    // ended (with other connections' responses, in one syscall), but always before anything else it writes and
    // before the connection is shut down or closed.
    virtual void write_last(std::span<const std::string_view> pieces, deadline until) { write_all(pieces, until); }
    // Sends `count` bytes of file `fd` from `offset`; returns the bytes sent (short only at end of file).
    virtual size_t send_file(int fd, off_t offset, size_t count, deadline until) = 0;
    // Before closing with unread input: stop sending and drain what the peer still sends, so the kernel
    // does not answer it with a reset that destroys the response in flight (a "lingering close").
    virtual void linger(deadline until) = 0;
    // Bytes of a response (write_last) not sent yet: a connection with some is not idle, whatever its input.
    virtual bool output_pending() const { return false; }
    // Sends them now (waiting as a write does): before the connection closes, or serves its next request.
    virtual void flush_output(deadline) {}
    // A request on this connection took `took` from the app's call to its end (write_last batches only fast ones).
    virtual void request_done(std::chrono::nanoseconds) {}
    // Bytes have arrived that nobody read yet (closing now would reset the connection).
    virtual bool input_pending() { return false; }
    // Input already taken off the socket and held here (TLS records decrypted ahead): the connection is not idle
    // although its socket may be.
    virtual bool has_buffered_input() const { return false; }
    // Waits until the socket under the stream is readable; false at the deadline. For what is read off the raw
    // socket before the stream proper (a PROXY protocol header). A stream with no socket has nothing to wait for.
    virtual bool wait_socket_readable(deadline) { return true; }
    // Between keep-alive requests: let other connections run even if the next request is already buffered
    // (DESIGN §3 Fairness). A no-op where there is nothing else to run.
    virtual void yield() {}
};

}  // namespace gcorn::http
