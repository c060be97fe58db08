// The one EAGAIN loop (STYLE habit 5): a byte_stream over a non-blocking socket whose waits are delegated to
// a Waiter — poll(2) with the GIL released for sync workers, a parked greenlet for the async worker
// (DESIGN §2: only how a wait happens differs between worker classes).
#pragma once
#include <cerrno>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "http/byte_stream.hpp"

namespace gcorn::worker {

// Waiter: `bool wait(int fd, bool writable, http::deadline)` returns false on timeout and throws
// http::stream_error if the wait cannot happen; `void yield()` lets other work run.
template <class Waiter>
class socket_stream final : public http::byte_stream {
public:
    socket_stream(int fd, Waiter waiter) : fd_(fd), waiter_(std::move(waiter)) {}

    size_t read_some(std::span<char> into, http::deadline until) override {
        return io(false, until, [&] { return ::recv(fd_, into.data(), into.size(), MSG_DONTWAIT); });
    }

    void write_all(std::span<const std::string_view> pieces, http::deadline until) override {
        iovec iov[8];
        size_t n = 0;
        for (auto& p : pieces)
            if (!p.empty() && n < 8) iov[n++] = {const_cast<char*>(p.data()), p.size()};
        iovec* cur = iov;
        while (n > 0) {
            msghdr msg{};
            msg.msg_iov = cur;
            msg.msg_iovlen = n;
            size_t sent = io(true, until, [&] { return ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT); });
            // Skip what was sent: whole pieces, then the front of a partial one.
            while (n > 0 && sent >= cur->iov_len) sent -= cur->iov_len, ++cur, --n;
            if (n > 0) cur->iov_base = static_cast<char*>(cur->iov_base) + sent, cur->iov_len -= sent;
        }
    }

    size_t send_file(int fd, off_t offset, size_t count, http::deadline until) override {
        return io(true, until, [&] { return ::sendfile(fd_, fd, &offset, count); });
    }

    void linger(http::deadline until) override {
        ::shutdown(fd_, SHUT_WR);
        char scratch[16384];
        try {
            for (size_t total = 0; total < (1u << 20);) {
                size_t n = read_some(scratch, until);
                if (n == 0) return;
                total += n;
            }
        } catch (const http::stream_error&) {
        }
    }

    void yield() override { waiter_.yield(); }

    bool input_pending() override {
        char c;
        return ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
    }

    Waiter& waiter() { return waiter_; }

private:
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
};

}  // namespace gcorn::worker
