// What every worker class does with an accepted socket before HTTP (issue 6): name its peer and whether it
// is a trusted front end, read its PROXY protocol header, wrap it in TLS. Every wait goes to the worker's
// Waiter (as socket_stream's do), so a slow client never blocks other connections in async and gthread.
#pragma once
#include <cerrno>
#include <memory>
#include <string>
#include <sys/socket.h>

#include <spdlog/spdlog.h>

#include "config/address_list.hpp"
#include "config/settings.hpp"
#include "http/byte_stream.hpp"
#include "http/proxy_protocol.hpp"
#include "sys/listener.hpp"
#include "worker/serve.hpp"
#include "worker/socket_stream.hpp"
#include "worker/tls_stream.hpp"
#include "wsgi/app.hpp"

namespace gcorn::worker {

class transport {
public:
    // Loads the TLS certificates when certfile is set. Throws std::runtime_error naming what failed.
    explicit transport(const config::settings& s);

    // A socket just accepted on `l`: its options set (for `keepalive` use or not), its addresses and trust named
    // (forwarded_allow_ips; a unix socket's peer is the local proxy).
    wsgi::connection_info adopt(int fd, sys::endpoint peer, const sys::listener& l, bool keepalive) const;

    // The connection's byte stream: plain, or TLS with the handshake still to come (in prepare), waiting as
    // `waiter` does.
    template <class Waiter>
    std::unique_ptr<http::byte_stream> open(int fd, Waiter waiter) const;

    // Before the first request: the PROXY header (proxy_protocol) and the TLS handshake, completing `c.info`.
    // False if the connection is to be closed; logged at debug level (scanners and impatient clients are normal).
    bool prepare(connection& c, http::deadline until) const;

private:
    // The PROXY protocol spec forbids guessing: a front end in proxy_allow_ips must send the header, any other
    // peer is a direct client (a PROXY line from it is just a bad request).
    bool expects_proxy_header(const wsgi::connection_info& info) const;
    void apply(const http::proxy_header& h, wsgi::connection_info& info) const;

    std::unique_ptr<tls_context> tls_;
    config::address_list forwarded_from_, proxy_from_;
    // Which PROXY header versions a trusted front end sends (proxy_protocol): none, v1, v2 or either.
    bool accept_v1_, accept_v2_;
};

// Reads exactly the PROXY header, never a byte of what follows it (a TLS handshake or the request): a peek
// shows what arrived, and only bytes that certainly belong to the header are consumed.
http::proxy_header read_proxy_header(int fd, http::byte_stream& stream, http::deadline until);

template <class Waiter>
std::unique_ptr<http::byte_stream> transport::open(int fd, Waiter waiter) const {
    if (!tls_) return std::make_unique<socket_stream<Waiter>>(fd, std::move(waiter));
    return std::make_unique<tls_stream<Waiter>>(fd, std::make_unique<tls_session>(*tls_, fd), std::move(waiter));
}

}  // namespace gcorn::worker
