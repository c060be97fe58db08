#include "worker/transport.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include "hooks/hooks.hpp"

namespace gcorn::worker {

namespace {

// TLS when certfile is set (as Gunicorn's is_ssl), from the ssl_context hook's context if there is one.
std::unique_ptr<tls_context> make_tls(const config::settings& s) {
    if (s.certfile.empty()) return nullptr;
    if (auto python_context = hooks::ssl_context(s)) return std::make_unique<tls_context>(s, std::move(python_context));
    return std::make_unique<tls_context>(s);
}

}  // namespace

transport::transport(const config::settings& s)
    : tls_(make_tls(s)),
      forwarded_from_(s.forwarded_allow_ips), proxy_from_(s.proxy_allow_ips),
      accept_v1_(s.proxy_protocol == "v1" || s.proxy_protocol == "auto" || s.proxy_protocol == "true"),
      accept_v2_(s.proxy_protocol == "v2" || s.proxy_protocol == "auto" || s.proxy_protocol == "true") {}

wsgi::connection_info transport::adopt(int fd, sys::endpoint peer, const sys::listener& l, bool keepalive) const {
    if (keepalive && !l.is_unix) {
        // Responses leave in one write; on a kept-alive connection Nagle would hold back the next one (or a
        // streamed chunk) until the previous is acknowledged. A connection closed after one response gains nothing.
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    wsgi::connection_info c;
    c.socket = wsgi::client_socket(fd);
    c.remote_addr = std::move(peer.host);
    c.remote_port = peer.port;
    c.server_name = l.host;
    c.server_port = l.port;
    c.trusted_proxy = l.is_unix || forwarded_from_.contains(c.remote_addr);  // a unix socket's peer is the local proxy
    c.https = tls_ != nullptr;
    return c;
}

bool transport::prepare(connection& c, http::deadline until) const {
    try {
        if (expects_proxy_header(c.info)) apply(read_proxy_header(c.fd, *c.stream, until), c.info);
        if (auto* tls = dynamic_cast<tls_stream_base*>(c.stream.get())) {
            tls->handshake(until);
            c.info.peer_cert = tls->session().peer_certificate();
        }
        return true;
    } catch (const http::stream_error& e) {
        spdlog::debug("Connection from {} closed before its first request: {}", c.info.remote_addr, e.what());
        return false;
    }
}

bool transport::expects_proxy_header(const wsgi::connection_info& info) const {
    return (accept_v1_ || accept_v2_) && (info.remote_addr.empty() || proxy_from_.contains(info.remote_addr));
}

// The original client replaces the proxy as REMOTE_ADDR/REMOTE_PORT; LOCAL (a health check) keeps the socket's.
void transport::apply(const http::proxy_header& h, wsgi::connection_info& info) const {
    if ((h.version == 1 && !accept_v1_) || (h.version == 2 && !accept_v2_))
        throw http::stream_error(http::stream_error::kind::closed, "PROXY protocol version not accepted here");
    if (h.local) return;
    info.remote_addr = h.source_addr;
    info.remote_port = h.source_port;
    if (h.tls) info.https = true;
}

http::proxy_header read_proxy_header(int fd, http::byte_stream& stream, http::deadline until) {
    using http::stream_error;
    std::string header;
    char peeked[536];  // a v1 line, or a v2 header with its addresses and the usual TLVs, in one look
    for (;;) {
        ssize_t n = ::recv(fd, peeked, sizeof peeked, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0) throw stream_error(stream_error::kind::closed, "closed before its PROXY header");
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN) throw stream_error(stream_error::kind::closed, "connection reset");
        if (n < 0) {
            if (!stream.wait_socket_readable(until)) throw stream_error(stream_error::kind::timeout, "no PROXY header in time");
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

}  // namespace gcorn::worker
