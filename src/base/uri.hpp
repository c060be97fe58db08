// Request-target helpers shared by the environ (wsgi/) and the access log (log/): header-only, usable by every
// layer. Plain bytes in, plain bytes out; no character set is assumed.
#pragma once
#include <string>
#include <string_view>

namespace gcorn::uri {

// RFC 3986 §2.1: each "%XX" as the byte it stands for; a '%' not followed by two hex digits stays as it is.
inline std::string percent_decode(std::string_view in) {
    auto hexval = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    std::string out;
    out.reserve(in.size());
    for (size_t i = 0; i < in.size(); ++i) {
        int hi, lo;
        if (in[i] == '%' && i + 2 < in.size() && (hi = hexval(in[i + 1])) >= 0 && (lo = hexval(in[i + 2])) >= 0) {
            out += char(hi * 16 + lo);
            i += 2;
        } else {
            out += in[i];
        }
    }
    return out;
}

// The path and query of a request target (RFC 9112 §3.2): origin form as is, absolute form from its path.
// Asterisk form (OPTIONS *) and authority form (CONNECT host:port) have no path: "".
constexpr std::string_view path_and_query(std::string_view target) noexcept {
    if (target.starts_with('/')) return target;
    if (auto scheme = target.find("://"); scheme != std::string_view::npos) {
        auto path_at = target.find('/', scheme + 3);
        return path_at == std::string_view::npos ? "/" : target.substr(path_at);
    }
    return {};
}

}  // namespace gcorn::uri
