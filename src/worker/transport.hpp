// What every worker class does with an accepted socket before HTTP (issue 6): name its peer and whether it
// is a trusted front end, read its PROXY protocol header, wrap it in TLS. Every wait goes to the worker's
// Waiter (as socket_stream's do), so a slow client never blocks other connections in async and gthread.
#pragma once
#include <cerrno>
#include <memory>
#include <string>
#include <sys/socket.h>

#include <spdlog/spdlog.h>

#include "config/settings.hpp"
#include "http/byte_stream.hpp"
#include "http/proxy_protocol.hpp"
#include "sys/listener.hpp"
#include "worker/socket_stream.hpp"
#include "worker/tls_stream.hpp"
#include "wsgi/app.hpp"

namespace gcorn::worker {

class transport {
public:
    // Loads the TLS certificates when certfile is set. Throws std::runtime_error naming what failed.
    explicit transport(const config::settings& s);

    // Addresses and trust of a connection accepted on `l` (forwarded_allow_ips; a unix socket's peer is the
    // local proxy).
    wsgi::connection_info describe(int fd, const sys::listener& l) const;

    // The connection's byte stream: plain, or TLS with the handshake still to come (in prepare).
    template <class Waiter>
    std::unique_ptr<http::byte_stream> open(int fd, Waiter waiter) const;

    // Before the first request: the PROXY header (proxy_protocol) and the TLS handshake, completing `info`.
    // False if the connection is to be closed; logged at debug level (scanners and impatient clients are normal).
    template <class Waiter>
    bool prepare(int fd, http::byte_stream& stream, Waiter& waiter, wsgi::connection_info& info,
                 http::deadline until) const;

    // Decrypted input not read yet: the connection is not idle even though its socket may be.
    static bool has_buffered_input(http::byte_stream& stream);

private:
    // The PROXY protocol spec forbids guessing: a front end in proxy_allow_ips must send the header, any other
    // peer is a direct client (a PROXY line from it is just a bad request).
    bool expects_proxy_header(const wsgi::connection_info& info) const;
    static void apply(const http::proxy_header& h, wsgi::connection_info& info);

    std::unique_ptr<tls_context> tls_;
    http::address_list forwarded_from_, proxy_from_;
    bool proxy_protocol_;
};

// Reads exactly the PROXY header, never a byte of what follows it (a TLS handshake or the request): a peek
// shows what arrived, and only bytes that certainly belong to the header are consumed.
template <class Waiter>
http::proxy_header read_proxy_header(int fd, Waiter& waiter, http::deadline until) {
    using http::stream_error;
    std::string header;
    char peeked[536];  // a v1 line, or a v2 header with its addresses and the usual TLVs, in one look
    for (;;) {
        ssize_t n = ::recv(fd, peeked, sizeof peeked, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0) throw stream_error(stream_error::kind::closed, "closed before its PROXY header");
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN) throw stream_error(stream_error::kind::closed, "connection reset");
        if (n < 0) {
            if (!waiter.wait(fd, false, until)) throw stream_error(stream_error::kind::timeout, "no PROXY header in time");
            continue;
        }
        size_t had = header.size();
        header.append(peeked, size_t(n));
        auto scan = http::scan_proxy_header(header);
        if (scan.result == http::proxy_scan::state::invalid)
            throw stream_error(stream_error::kind::closed, "invalid PROXY protocol header");
        bool complete = scan.result == http::proxy_scan::state::complete;
        for (size_t take = complete ? scan.length - had : size_t(n); take > 0;) {  // already here: never blocks
            ssize_t got = ::recv(fd, peeked, take, MSG_DONTWAIT);
            if (got > 0) take -= size_t(got);
            else if (got == 0 || errno != EINTR) throw stream_error(stream_error::kind::closed, "connection reset");
        }
        if (complete) return scan.header;
    }
}

template <class Waiter>
std::unique_ptr<http::byte_stream> transport::open(int fd, Waiter waiter) const {
    if (!tls_) return std::make_unique<socket_stream<Waiter>>(fd, std::move(waiter));
    return std::make_unique<tls_stream<Waiter>>(fd, std::make_unique<tls_session>(*tls_, fd), std::move(waiter));
}

template <class Waiter>
bool transport::prepare(int fd, http::byte_stream& stream, Waiter& waiter, wsgi::connection_info& info,
                        http::deadline until) const {
    try {
        if (expects_proxy_header(info)) apply(read_proxy_header(fd, waiter, until), info);
        if (auto* tls = dynamic_cast<tls_stream_base*>(&stream)) {
            tls->handshake(until);
            info.peer_cert = tls->session().peer_certificate();
        }
        return true;
    } catch (const http::stream_error& e) {
        spdlog::debug("Connection from {} closed before its first request: {}", info.remote_addr, e.what());
        return false;
    }
}

}  // namespace gcorn::worker
