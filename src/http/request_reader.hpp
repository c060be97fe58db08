// Reads requests off one connection: heads in one pass over what head_scan checked, then bodies (Content-Length
// or chunked with trailers, through Beast's parser) on demand. Keeps pipelined bytes for the next request.
// No Python, no sockets: everything goes through byte_stream.
#pragma once
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "http/byte_stream.hpp"
#include "http/head_scan.hpp"
#include "http/request.hpp"

namespace gcorn::http {

class request_reader final : public body_source {
public:
    request_reader(byte_stream& stream, const limits& lim, std::chrono::milliseconds body_read_timeout);
    ~request_reader() override;

    // The next request head, or nullopt if the peer closed (or `idle_until` passed) before its first byte.
    // `head_until` bounds the whole head, so a slow client cannot pin a worker (slowloris).
    // Throws http_error for a malformed head or one not complete by `head_until` (408), stream_error for a
    // connection that failed mid-head.
    std::optional<request_head> read_head(deadline idle_until, deadline head_until);

    // wsgi.input: the body, 0 at its end. Sends "100 Continue" first if the client waits for it.
    size_t read(std::span<char> into) override;

    // Consumes what the app left unread, up to `max_bytes`; false if the connection cannot be reused.
    bool discard_body(size_t max_bytes, deadline until);

    // The current request's body has been read to its end (or it had none).
    bool body_complete() const;

    // The peer is a trusted front end (forwarded_allow_ips): the forwarder_headers it sets reach the app.
    void trust_forwarders(bool trusted);

    // Bytes the driver already took off the socket (a request head it collected while no worker was spent on
    // it): read before anything the stream gives.
    void seed(std::string_view received);

    // A request is already buffered: the next read_head will not wait on the socket.
    bool has_buffered_bytes() const;
    // Every byte received on this connection so far (heads and bodies), for the metrics.
    uint64_t bytes_read() const;

    // Between requests with nothing buffered: frees the read buffer and parser, so an idle keep-alive
    // connection costs a few hundred bytes (DESIGN §3.1 (15)). The next read_head allocates again.
    void release_buffers();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace gcorn::http
