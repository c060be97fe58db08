#include "hub/send_ring.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sys/socket.h>
#include <utility>

#include <liburing.h>
#include <spdlog/spdlog.h>

#include "hub/edge_socket.hpp"
#include "hub/hub.hpp"

namespace gcorn::hub {

namespace {

// Sends queued in one round beyond this are submitted early (the ring is full), which only costs a syscall more.
constexpr unsigned ring_entries = 256;

void wake_waiter(outbox& box) {
    if (box.waiter && !box.draining)
        if (auto* h = hub::current()) h->wakeup(std::exchange(box.waiter, 0));
}

// Sends the rest of `box` by send(2) until the socket's buffer is full, then waits on the reactor for it to be
// writable again. The connection's own next write waits for this to end (outbox::waiter) rather than on the socket.
void drain(const std::shared_ptr<outbox>& box) {
    // In the ring again (the connection's next response replaced what was drained): the ring sends that.
    while (box->alive && !box->in_ring && !box->error && !box->empty()) {
        auto rest = box->rest();
        ssize_t n = ::send(box->socket->native_handle(), rest.data(), rest.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) {
            box->sent += size_t(n);
            continue;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            box->error = errno;  // the client is gone: its next read (or the idle wait) ends the connection
            break;
        }
        if (box->draining) return;  // a wait is already queued
        box->draining = true;
        box->socket->async_wait(edge_socket::wait_type::wait_write, edge_socket::known::fresh,
                                [box](boost::system::error_code ec) {
                                    box->draining = false;
                                    // Cancelled, the connection may live on (a stop's last call): go on. A wait
                                    // that failed outright would fail again: the connection is broken.
                                    if (ec && ec != boost::asio::error::operation_aborted && box->alive)
                                        box->error = ec.value() ? ec.value() : EIO;
                                    drain(box);
                                    wake_waiter(*box);
                                });
        return;
    }
    if (!box->in_ring) box->release_if_sent();
    wake_waiter(*box);
}

}  // namespace

struct send_ring::impl {
    io_uring ring{};
    unsigned in_flight = 0;  // submitted, completion not reaped
    ~impl() { io_uring_queue_exit(&ring); }
};

std::unique_ptr<send_ring> send_ring::open() {
    if (const char* off = std::getenv("GCORN_NO_IO_URING"); off && *off && std::string_view(off) != "0")
        return nullptr;
    auto i = std::make_unique<impl>();
    // Only this thread submits, and completions are reaped right after the submit that made them: the kernel
    // need not interrupt the thread to post them (6.0+; older kernels refuse the flags, then plain).
    int err = io_uring_queue_init(ring_entries, &i->ring, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN);
    if (err == -EINVAL) err = io_uring_queue_init(ring_entries, &i->ring, 0);
    if (err < 0) {
        spdlog::debug("io_uring unavailable ({}): responses are sent one syscall each", std::strerror(-err));
        return nullptr;
    }
    // IORING_OP_SEND is Linux 5.6's; a ring without it would fail every send.
    io_uring_probe* probe = io_uring_get_probe_ring(&i->ring);
    bool sends = probe && io_uring_opcode_supported(probe, IORING_OP_SEND);
    if (probe) io_uring_free_probe(probe);
    if (!sends) {
        spdlog::debug("io_uring cannot send here: responses are sent one syscall each");
        return nullptr;
    }
    return std::unique_ptr<send_ring>(new send_ring(std::move(i)));
}

send_ring::send_ring(std::unique_ptr<impl> i) : impl_(std::move(i)) { queued_.reserve(ring_entries); }
send_ring::~send_ring() = default;

bool send_ring::queue(const std::shared_ptr<outbox>& box) {
    if (!usable()) return false;
    io_uring_sqe* sqe = io_uring_get_sqe(&impl_->ring);
    if (!sqe) {
        flush();  // the ring is full: this round's sends so far go now
        sqe = usable() ? io_uring_get_sqe(&impl_->ring) : nullptr;
        if (!sqe) return false;
    }
    auto rest = box->rest();
    // MSG_DONTWAIT (and the socket's O_NONBLOCK): a full socket buffer completes the send at once, short or with
    // EAGAIN, instead of parking it in the kernel until the socket is writable.
    io_uring_prep_send(sqe, box->socket->native_handle(), rest.data(), rest.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    io_uring_sqe_set_data(sqe, box.get());
    box->in_ring = true;
    queued_.push_back(box);
    if (average_ > batch_below) flush();  // slow requests: a batch would only delay their responses
    return true;
}

void send_ring::flush() {
    if (queued_.empty()) return;
    auto& r = impl_->ring;
    auto reap = [&] {
        io_uring_cqe* cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&r, head, cqe) {
            ++seen;
            auto* box = static_cast<outbox*>(io_uring_cqe_get_data(cqe));
            box->in_ring = false;
            // What was not taken (EAGAIN, a short send, or an error) is left to send(2) below, which sees the
            // error itself if there is one.
            if (cqe->res > 0) box->sent += size_t(cqe->res);
        }
        io_uring_cq_advance(&r, seen);
        impl_->in_flight -= seen;
    };
    // Everything queued is submitted, and every send completes inside the submit (none waits for the socket), so
    // the loop below finds its completions at once; it waits only if the kernel posted some late.
    for (int failures = 0; !broken_ && io_uring_sq_ready(&r) > 0;) {
        int submitted = io_uring_submit(&r);
        if (submitted > 0) {
            impl_->in_flight += unsigned(submitted);
            failures = 0;
        } else if (++failures == 3 || (submitted != -EBUSY && submitted != -EAGAIN && submitted != -EINTR)) {
            broken_ = true;
            spdlog::error("io_uring_submit failed ({}): responses go by send(2) from now on",
                          std::strerror(submitted < 0 ? -submitted : EIO));
        }
        reap();  // EBUSY: the completion queue was full; reaped, the submit can go on
    }
    while (impl_->in_flight > 0) {
        io_uring_cqe* cqe;
        int err = io_uring_wait_cqe(&r, &cqe);
        if (err < 0 && err != -EINTR && err != -EAGAIN) {
            spdlog::critical("io_uring_wait_cqe failed ({}) with sends in flight", std::strerror(-err));
            std::abort();  // their buffers may still be read by the kernel: nothing safe to do but stop
        }
        reap();
    }
    // A broken ring's unsubmitted sends stay unsubmitted (it is never entered again): send(2) takes them.
    for (auto& box : queued_) box->in_ring = false;
    for (auto& box : queued_) drain(box);  // what the kernel did not take goes by send(2)
    queued_.clear();
}

void send_ring::close() {
    flush();
    closed_ = true;
}

}  // namespace gcorn::hub
