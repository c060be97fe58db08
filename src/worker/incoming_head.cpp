#include "worker/incoming_head.hpp"

#include <cerrno>
#include <sys/socket.h>

#include <spdlog/spdlog.h>

#include "http/errors.hpp"
#include "http/response_writer.hpp"

namespace gcorn::worker {
namespace {

// One read asks for this much: a usual head in one call, and little of a body read ahead of serve().
constexpr size_t read_size = 8192;
// A timed-out client's unread input is drained up to this before the 408 goes out, so closing does not send a
// reset that could destroy the response in flight; a client that sent more has it reset anyway.
constexpr size_t drain_limit = 65536;

}  // namespace

bool incoming_head::driver_reads_heads(const config::settings& s) {
    return s.certfile.empty() && (s.proxy_protocol == "off" || s.proxy_protocol == "false");
}

incoming_head::state incoming_head::read_from(int fd) {
    char chunk[read_size];
    for (;;) {
        ssize_t n = ::recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
        if (n == 0) return state::gone;
        if (n < 0) {
            if (errno == EINTR) continue;
            drained_ = true;
            return errno == EAGAIN || errno == EWOULDBLOCK ? state::arriving : state::gone;
        }
        drained_ = size_t(n) < sizeof chunk;
        size_t from = bytes_.size() < 3 ? 0 : bytes_.size() - 3;
        bytes_.append(chunk, size_t(n));
        // The usual case, a whole head in one read: its end is found with a memchr-speed search, and serve()'s
        // parser checks it. The byte-by-byte scan (limits, malformed lines) is for heads still arriving.
        if (bytes_.find("\r\n\r\n", from) != std::string::npos) return state::complete;
        // Stop at the head: what follows (a body, a FIN after it) is serve()'s to read.
        try {
            if (scan_.scan(bytes_, *lim_) == http::head_scan::result::complete) return state::complete;
        } catch (const http::http_error&) {
            return state::complete;  // refused: serve() scans it again and answers with the status
        }
    }
}

void incoming_head::hand_to(http::request_reader& reader) {
    reader.seed(bytes_);
    bytes_.clear();
    scan_ = {};
}

void incoming_head::time_out(int fd) {
    if (!started()) return;
    spdlog::debug("Request head not whole within header_timeout ({} bytes): 408", bytes_.size());
    char scratch[read_size];
    for (size_t drained = 0; drained < drain_limit;) {
        ssize_t n = ::recv(fd, scratch, sizeof scratch, MSG_DONTWAIT);
        if (n <= 0) break;
        drained += size_t(n);
    }
    // The socket's send buffer is empty (nothing was written yet): this small write never waits.
    auto response = http::canned_response(408, "request head timed out\n");
    (void)::send(fd, response.data(), response.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    ::shutdown(fd, SHUT_WR);
}

}  // namespace gcorn::worker
