// A request head still arriving, held by the driver instead of serve() (DESIGN §2): the sync driver's poll loop
// and the reactor read what a client sends as it comes, and spend the worker, a pool thread or a greenlet on the
// connection only once its head is whole, so a client trickling its head costs only its own bytes (slowloris).
// Never waits and knows nothing of Python: the driver says when the socket is readable and when time is up.
#pragma once
#include <string>

#include "config/settings.hpp"
#include "http/head_scan.hpp"
#include "http/request_reader.hpp"

namespace gcorn::worker {

class incoming_head {
public:
    enum class state { arriving, complete, gone };

    explicit incoming_head(const http::limits& lim) : lim_(&lim) {}

    // The driver can read heads itself only off a plain socket whose first byte is the request's: with TLS the
    // bytes are ciphertext and a PROXY header is read by the transport, so those connections go to serve() at
    // once (their head still bounded by head_timeout there, at the cost of a thread or the sync worker).
    static bool driver_reads_heads(const config::settings& s);

    // Reads what the socket has without waiting. complete once the head is whole, or refused by the limits or
    // as malformed (serve() reads it again and answers the 4xx); gone if the peer closed or failed first.
    state read_from(int fd);
    // The last read_from left the socket empty (its last recv saw EAGAIN, or fewer bytes than it asked).
    bool drained() const { return drained_; }

    // The client sent part of a request (a connection that never sent a byte has not started one).
    bool started() const { return !bytes_.empty(); }

    // Hands what was read to the connection's reader and starts over, for the next request on the connection.
    void hand_to(http::request_reader& reader);

    // The head's deadline passed: a started request is answered 408 (RFC 9110 §15.5.9) and the write side shut;
    // a connection that never sent a byte gets nothing, as nginx does (a browser's preconnected socket is not a
    // request, and a 408 there would only be read as an error by the next request it carries). The caller closes.
    void time_out(int fd);

private:
    const http::limits* lim_;
    std::string bytes_;
    http::head_scan scan_;
    bool drained_ = false;
};

}  // namespace gcorn::worker
