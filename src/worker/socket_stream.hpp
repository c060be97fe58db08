// The one EAGAIN loop (STYLE habit 5): a byte_stream over a non-blocking socket whose waits are delegated to
// a Waiter — poll(2) with the GIL released for sync workers, a parked greenlet for the async worker
// (DESIGN §2: only how a wait happens differs between worker classes).
#pragma once
#include <algorithm>
#include <cerrno>
#include <memory>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "http/byte_stream.hpp"
#include "hub/send_ring.hpp"
#include "worker/waiter.hpp"

namespace gcorn::worker {

// Waiter: see worker/waiter.hpp.
template <class Waiter>
class socket_stream final : public http::byte_stream {
public:
    socket_stream(int fd, Waiter waiter) : fd_(fd), waiter_(std::move(waiter)) {}
    ~socket_stream() override {
        if (!box_) return;
        // What is in the ring is handed to the kernel before the close, which sends it first; a rest that the
        // socket would not take is dropped with the connection (serve() and the reactor settle before closing).
        if (box_->in_ring) ring()->flush();
        box_->alive = false;  // the fd is closed after this: nothing may send on it later
    }

    // What each read saw goes to the Waiter if it keeps note (edge_socket): a read that drained the socket lets
    // the connection's next wait on the reactor skip re-arming it.
    size_t read_some(std::span<char> into, http::deadline until) override {
        return io(false, until, [&] {
            ssize_t got = ::recv(fd_, into.data(), into.size(), MSG_DONTWAIT);
            if (got >= 0) note_read(waiter_, size_t(got) < into.size());
            return got;
        });
    }

    // Every piece is written: up to `batch` at a time in one sendmsg, the next batch after it.
    void write_all(std::span<const std::string_view> pieces, http::deadline until) override {
        settle(until);
        while (!pieces.empty()) {
            size_t take = std::min(pieces.size(), batch);
            write_batch(pieces.first(take), until);
            pieces = pieces.subspan(take);
        }
    }

    // A small last piece of a response is copied into the connection's outbox and leaves with the hub's round.
    void write_last(std::span<const std::string_view> pieces, http::deadline until) override {
        size_t total = 0;
        for (auto& p : pieces) total += p.size();
        auto* ring = this->ring();
        if (!ring || total == 0 || total > max_deferred) return write_all(pieces, until);
        settle(until);
        if (!box_) {
            box_ = std::make_shared<hub::outbox>();
            box_->socket = waiter_.socket;
        }
        box_->bytes.clear();
        box_->sent = 0;
        box_->bytes.reserve(total);
        for (auto& p : pieces) box_->bytes.append(p);
        if (!ring->queue(box_)) settle(until);  // the ring failed meanwhile: sent here
    }

    size_t send_file(int fd, off_t offset, size_t count, http::deadline until) override {
        settle(until);
        return io(true, until, [&] { return ::sendfile(fd_, fd, &offset, count); });
    }

    void linger(http::deadline until) override {
        try {
            settle(until);
        } catch (const http::stream_error&) {
        }
        ::shutdown(fd_, SHUT_WR);
        char scratch[16384];
        try {
            for (size_t total = 0; total < linger_limit;) {
                size_t n = read_some(scratch, until);
                if (n == 0) return;
                total += n;
            }
        } catch (const http::stream_error&) {
        }
    }

    void yield() override { waiter_.yield(); }

    bool output_pending() const override { return box_ && box_->alive && !box_->error && !box_->empty(); }
    void flush_output(http::deadline until) override { settle(until); }
    void request_done(std::chrono::nanoseconds took) override {
        if (auto* r = ring()) r->note_request(took);
    }

    bool input_pending() override {
        char c;
        return ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
    }

    bool wait_socket_readable(http::deadline until) override { return wait_for_input(waiter_, fd_, until); }

private:
    // Pieces per sendmsg: a response is a head, a body chunk and its framing, so 8 covers one in a syscall.
    static constexpr size_t batch = 8;
    // At most this much of what a client still sends is drained by a lingering close (then it is reset).
    static constexpr size_t linger_limit = 1u << 20;

    // The hub's ring, for a waiter that has one (async); null for the others and wherever io_uring is not used.
    hub::send_ring* ring() {
        if constexpr (requires { waiter_.sends(); }) return waiter_.sends();
        else return nullptr;
    }

    // Deferred responses larger than this are sent at once: the copy would cost more than the syscall it saves.
    static constexpr size_t max_deferred = 16384;

    // The last response's deferred bytes are out before anything else is written: submitted with the round so far
    // if still queued, the rest (a full socket buffer) sent here, waiting as any write does.
    void settle(http::deadline until) {
        if (!box_) return;
        if (box_->in_ring) ring()->flush();  // in the ring: the ring is usable (a failing one empties itself)
        while (!box_->empty() && !box_->error) {
            if constexpr (requires { waiter_.wait_drained(*box_, until); }) {
                if (box_->draining) {  // the reactor waits for the socket already: wait for it to finish instead
                    if (!waiter_.wait_drained(*box_, until))
                        throw http::stream_error(http::stream_error::kind::timeout, "timed out");
                    continue;
                }
            }
            // The reactor's drain may send from the same outbox while this waits: the rest is read at each try.
            box_->sent += io(true, until, [&] {
                auto rest = box_->rest();
                return ::send(fd_, rest.data(), rest.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            });
        }
        if (box_->error) throw http::stream_error(http::stream_error::kind::closed, "connection reset");
        box_->release_if_sent();
    }

    void write_batch(std::span<const std::string_view> pieces, http::deadline until) {
        iovec iov[batch];
        size_t n = 0;
        for (auto& p : pieces)
            if (!p.empty()) iov[n++] = {const_cast<char*>(p.data()), p.size()};
        iovec* cur = iov;
        constexpr int flags = MSG_NOSIGNAL | MSG_DONTWAIT;
        while (n > 0) {
            // One piece goes by send(2), without the msghdr and iovec that sendmsg(2) copies in.
            size_t sent = io(true, until, [&] {
                if (n == 1) return ::send(fd_, cur->iov_base, cur->iov_len, flags);
                msghdr msg{};
                msg.msg_iov = cur;
                msg.msg_iovlen = n;
                return ::sendmsg(fd_, &msg, flags);
            });
            // Skip what was sent: whole pieces, then the front of a partial one.
            while (n > 0 && sent >= cur->iov_len) sent -= cur->iov_len, ++cur, --n;
            if (n > 0) cur->iov_base = static_cast<char*>(cur->iov_base) + sent, cur->iov_len -= sent;
        }
    }

    // Try the syscall; on EAGAIN wait until the socket is ready (or the deadline passes) and retry.
    template <class Syscall>
    size_t io(bool writable, http::deadline until, Syscall&& call) {
        for (;;) {
            ssize_t n = call();
            if (n >= 0) return size_t(n);
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                throw http::stream_error(http::stream_error::kind::closed, "connection reset");
            if (!waiter_.wait(fd_, writable, until))
                throw http::stream_error(http::stream_error::kind::timeout, "timed out");
        }
    }

    int fd_;
    Waiter waiter_;
    std::shared_ptr<hub::outbox> box_;  // async: the last response's bytes while they wait for the round
};

}  // namespace gcorn::worker
