// The PROXY protocol (HAProxy's spec, versions 1 and 2): the header a trusted front end sends before the
// first byte of the connection, naming the original client; and the address lists that say who is trusted.
// Pure functions over bytes; no sockets, no waiting (the worker reads the header without over-reading).
#pragma once
#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace gcorn::http {

// What a complete header says about the connection.
struct proxy_header {
    int version = 0;            // 1 or 2
    bool local = false;         // v2 LOCAL, v1 UNKNOWN, or a family we do not map: the socket's addresses stand
    std::string source_addr;    // the original client, as inet_ntop writes it
    int source_port = 0;
    std::string dest_addr;      // the address the client connected to (the proxy's listener)
    int dest_port = 0;
    bool tls = false;           // v2 PP2_TYPE_SSL with PP2_CLIENT_SSL: the client spoke TLS to the proxy
};

struct proxy_scan {
    enum class state {
        partial,    // every byte so far belongs to a header still being received
        complete,   // `length` bytes make the header, described by `header`
        invalid,    // not a PROXY header, or a malformed one
    };
    state result = state::partial;
    size_t length = 0;
    proxy_header header;
};

// The longest header accepted: v1 lines are at most 107 bytes; v2 carries a 16-bit length after 16 bytes.
inline constexpr size_t proxy_v1_max = 107;
inline constexpr size_t proxy_v2_max = 16 + 65535;

// Looks at the first bytes a connection received. The caller consumes exactly `length` bytes on `complete`
// (what follows is the client's own data); on `partial` all of `prefix` may be consumed while waiting for more.
proxy_scan scan_proxy_header(std::string_view prefix);

}  // namespace gcorn::http
