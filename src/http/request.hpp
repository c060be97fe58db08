// A parsed request head and the body it announces, as plain std types (no Beast), for wsgi/ and worker/.
// Knows nothing of sockets or Python.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace gcorn::http {

using header_list = std::vector<std::pair<std::string, std::string>>;

struct request_head {
    std::string method;
    std::string target;        // as sent (RAW_URI)
    int version = 11;          // 10 or 11
    header_list headers;       // names as sent, values trimmed; names with '_' dropped (DESIGN §6)
    std::optional<uint64_t> content_length;
    bool chunked = false;
    bool keep_alive = true;    // what the client asked for (HTTP/1.0 default close, 1.1 default keep-alive)
    bool expect_continue = false;
    bool must_close = false;   // e.g. a compression coding before chunked: no further request on this connection
    std::string unconventional_version;  // "HTTP/2.0" as sent, under permit_unconventional_http_version

    // The version this request is served as (the response's status line).
    std::string_view protocol() const { return version == 10 ? "HTTP/1.0" : "HTTP/1.1"; }
    // The version the client sent (SERVER_PROTOCOL, the access log).
    std::string_view sent_protocol() const {
        return unconventional_version.empty() ? protocol() : std::string_view(unconventional_version);
    }
    bool has_body() const { return chunked || content_length.value_or(0) > 0; }
};

// Hands a served request's field list back to the parser of this thread: the next head it parses fills the same
// vector and strings (their buffers kept), instead of a malloc for the vector and for every field over 15 bytes.
// Lists that would keep more than 8 KiB (entries and strings) are freed instead, so one huge head does not stay pooled.
void recycle(header_list&& fields) noexcept;

// Where wsgi.input reads from. `read` returns 0 at the end of the body; throws stream_error or http_error.
class body_source {
public:
    virtual ~body_source() = default;
    virtual size_t read(std::span<char> into) = 0;
};

}  // namespace gcorn::http
