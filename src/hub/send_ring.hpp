// The last bytes of many responses in one syscall (issue 14). A keep-alive response that is complete is copied
// into its connection's outbox and queued here instead of being sent by send(2) at once; the hub submits every
// queued send with one io_uring_enter before it waits for events again. On a paravirtualised VM a syscall costs
// about a microsecond of entry and exit alone, a tenth of a keep-alive request: a batch of N responses pays it
// once instead of N times.
//
// A queued response waits for the rest of the round: cheap for requests that take microseconds, not for requests
// that take milliseconds, which gain nothing from it anyway. So the ring keeps a running average of how long the
// requests behind its sends took (note_request) and, while that is over `batch_below`, sends each one at once.
//
// Ordering is the connection's: nothing else is written on a socket, and it is not shut down or closed, until its
// outbox is empty (socket_stream settles it first). A send the kernel could not take whole (a full socket buffer:
// the socket is non-blocking, so io_uring reports EAGAIN instead of waiting) keeps the rest in the outbox, and it
// goes out by send(2) when the socket is writable: from the reactor if the connection is idle, or from the
// connection's next write. liburing; plain C++ otherwise: knows nothing of HTTP or Python.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace gcorn::hub {

class edge_socket;

// One connection's unsent response bytes. Shared by the connection's stream and, while a send is in flight, the
// ring and a reactor wait: it outlives the connection if it must, and `alive` says whether the socket still exists.
struct outbox {
    std::string bytes;  // bytes[sent..] are still to be sent
    size_t sent = 0;
    bool in_ring = false;   // queued in the ring; flush() always ends it (sent, short, or failed)
    bool draining = false;  // a reactor wait will send the rest when the socket is writable
    bool alive = true;      // false once the connection's stream is gone (its fd may be reused)
    int error = 0;          // errno of a failed send: the connection is broken
    uint64_t waiter = 0;    // the hub job (token) waiting for the reactor's drain to end: an edge-triggered socket
                            // completes one write wait per edge, so the connection's own write does not wait too
    edge_socket* socket = nullptr;  // the connection's; valid while `alive`

    bool empty() const noexcept { return sent == bytes.size(); }
    std::string_view rest() const noexcept { return std::string_view(bytes).substr(sent); }
    // Sent: a big response's copy is not kept by an idle connection (10,000 of them would hold it each).
    void release_if_sent() {
        if (empty() && bytes.capacity() > kept_capacity) std::string().swap(bytes), sent = 0;
    }
    static constexpr size_t kept_capacity = 1024;
};

class send_ring {
public:
    // A ring, or null if io_uring cannot send here (a kernel without it or before 5.6, a seccomp filter that refuses
    // it as Docker's default does, or GCORN_NO_IO_URING set in the environment): then every send is send(2).
    static std::unique_ptr<send_ring> open();
    ~send_ring();
    send_ring(const send_ring&) = delete;
    send_ring& operator=(const send_ring&) = delete;

    // False once the ring failed or was closed: responses are sent by send(2).
    bool usable() const noexcept { return !broken_ && !closed_; }
    // Queues box->rest() on box->socket, or sends it at once while requests are slow (above). False if the ring is not
    // usable: the caller sends the box itself. PRECONDITION: !box->in_ring, !box->empty(), on the hub's thread.
    bool queue(const std::shared_ptr<outbox>& box);
    // Submits what is queued and reaps every completion: afterwards no outbox is in_ring. What the kernel did not
    // take (a full socket buffer) is sent by send(2) as the socket becomes writable, from the reactor.
    void flush();
    bool idle() const noexcept { return queued_.empty(); }
    // How long a request whose response may be queued took (from the app's call to its end).
    void note_request(std::chrono::nanoseconds took) noexcept {
        average_ += (took - average_) / 8;
    }
    // Flushes and refuses further sends (the worker's loop has ended).
    void close();

    // Requests that take longer than this on average have their responses sent at once.
    static constexpr std::chrono::nanoseconds batch_below = std::chrono::microseconds(50);

private:
    struct impl;
    explicit send_ring(std::unique_ptr<impl> i);
    std::unique_ptr<impl> impl_;
    std::vector<std::shared_ptr<outbox>> queued_;  // in submission order
    std::chrono::nanoseconds average_{0};
    bool broken_ = false, closed_ = false;
};

}  // namespace gcorn::hub
