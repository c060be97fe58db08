#include "worker/blocking_stream.hpp"

#include <cerrno>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "py/gil.hpp"

namespace gcorn::worker {
namespace {
[[noreturn]] void closed(const char* why) { throw http::stream_error(http::stream_error::kind::closed, why); }
}  // namespace

void blocking_stream::wait(short events, http::deadline until) {
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - http::clock::now()).count();
        if (left <= 0) throw http::stream_error(http::stream_error::kind::timeout, "timed out");
        pollfd p{fd_, events, 0};
        int rc;
        {
            py::gil_release unlocked;  // other Python threads run while this one waits
            rc = ::poll(&p, 1, int(std::min<long long>(left, 60'000)));
        }
        if (rc > 0) return;
        if (rc < 0 && errno != EINTR) closed("poll failed");
    }
}

size_t blocking_stream::read_some(std::span<char> into, http::deadline until) {
    for (;;) {
        ssize_t n = ::recv(fd_, into.data(), into.size(), MSG_DONTWAIT);
        if (n >= 0) return size_t(n);
        if (errno == EAGAIN || errno == EWOULDBLOCK) wait(POLLIN, until);
        else if (errno != EINTR) closed("connection reset");
    }
}

void blocking_stream::write_all(std::span<const std::string_view> pieces, http::deadline until) {
    iovec iov[8];
    size_t n = 0;
    for (auto& p : pieces)
        if (!p.empty() && n < 8) iov[n++] = {const_cast<char*>(p.data()), p.size()};
    iovec* cur = iov;
    while (n > 0) {
        msghdr msg{};
        msg.msg_iov = cur;
        msg.msg_iovlen = n;
        ssize_t sent = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (sent < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) wait(POLLOUT, until);
            else if (errno != EINTR) closed("connection reset while writing");
            continue;
        }
        // Skip what was sent: whole pieces, then the front of a partial one.
        while (n > 0 && size_t(sent) >= cur->iov_len) sent -= ssize_t(cur->iov_len), ++cur, --n;
        if (n > 0) cur->iov_base = static_cast<char*>(cur->iov_base) + sent, cur->iov_len -= size_t(sent);
    }
}

size_t blocking_stream::send_file(int fd, off_t offset, size_t count, http::deadline until) {
    for (;;) {
        ssize_t n = ::sendfile(fd_, fd, &offset, count);
        if (n >= 0) return size_t(n);
        if (errno == EAGAIN) wait(POLLOUT, until);
        else if (errno != EINTR) closed("connection reset while sending a file");
    }
}

void blocking_stream::linger(http::deadline until) {
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

}  // namespace gcorn::worker
