#include "worker/transport.hpp"

namespace gcorn::worker {

transport::transport(const config::settings& s)
    : tls_(s.certfile.empty() ? nullptr : std::make_unique<tls_context>(s)),
      forwarded_from_(s.forwarded_allow_ips), proxy_from_(s.proxy_allow_ips), proxy_protocol_(s.proxy_protocol) {}

wsgi::connection_info transport::describe(int fd, const sys::listener& l) const {
    wsgi::connection_info c;
    auto peer = sys::peer_of(fd);
    c.remote_addr = peer.host;
    c.remote_port = peer.port;
    c.server_name = l.host;
    c.server_port = l.port;
    c.trusted_proxy = l.is_unix || forwarded_from_.contains(peer.host);  // a unix socket's peer is the local proxy
    c.https = tls_ != nullptr;
    return c;
}

bool transport::expects_proxy_header(const wsgi::connection_info& info) const {
    return proxy_protocol_ && (info.remote_addr.empty() || proxy_from_.contains(info.remote_addr));
}

// The original client replaces the proxy as REMOTE_ADDR/REMOTE_PORT; LOCAL (a health check) keeps the socket's.
void transport::apply(const http::proxy_header& h, wsgi::connection_info& info) {
    if (h.local) return;
    info.remote_addr = h.source_addr;
    info.remote_port = h.source_port;
    if (h.tls) info.https = true;
}

bool transport::has_buffered_input(http::byte_stream& stream) {
    auto* tls = dynamic_cast<tls_stream_base*>(&stream);
    return tls && tls->session().pending() > 0;
}

}  // namespace gcorn::worker
