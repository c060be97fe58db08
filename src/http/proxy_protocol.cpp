#include "http/proxy_protocol.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <charconv>
#include <cstring>
#include <stdexcept>

namespace gcorn::http {
namespace {

constexpr std::string_view v1_signature = "PROXY ";
constexpr std::string_view v2_signature{"\r\n\r\n\0\r\nQUIT\n", 12};
constexpr size_t v2_fixed = 16;  // signature, version/command, family/transport, 16-bit length

// v2 values (spec §2.2).
constexpr unsigned char cmd_local = 0x0, cmd_proxy = 0x1;
constexpr unsigned char af_unspec = 0x0, af_inet = 0x1, af_inet6 = 0x2, af_unix = 0x3;
constexpr unsigned char transport_stream = 0x1;
constexpr unsigned char pp2_type_ssl = 0x20, pp2_client_ssl = 0x01;

// `prefix` agrees with `signature` as far as both go.
bool agrees(std::string_view prefix, std::string_view signature) {
    size_t n = std::min(prefix.size(), signature.size());
    return prefix.substr(0, n) == signature.substr(0, n);
}

unsigned be16(const unsigned char* p) { return unsigned(p[0]) << 8 | p[1]; }

// A v1 port: decimal, 0..65535, no sign and no leading zero.
bool parse_port(std::string_view s, int& port) {
    if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0') || s[0] < '0' || s[0] > '9') return false;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), port);
    return ec == std::errc() && end == s.data() + s.size() && port <= 65535;
}

// A v1 address in its family's canonical text form, re-written as inet_ntop would (v6 compressed).
bool parse_address(int family, std::string_view s, std::string& out) {
    unsigned char bytes[16];
    char text[INET6_ADDRSTRLEN];
    std::string z(s);
    if (::inet_pton(family, z.c_str(), bytes) != 1 || !::inet_ntop(family, bytes, text, sizeof text)) return false;
    out = text;
    return true;
}

// "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443" (spec §2.1); `line` excludes the CRLF.
bool parse_v1(std::string_view line, proxy_header& h) {
    h.version = 1;
    std::vector<std::string_view> parts;
    for (size_t at = 0;;) {
        size_t sp = line.find(' ', at);
        parts.push_back(line.substr(at, sp - at));
        if (sp == std::string_view::npos) break;
        at = sp + 1;
    }
    if (parts.size() >= 2 && parts[1] == "UNKNOWN") return h.local = true;  // the rest is ignored
    if (parts.size() != 6) return false;
    int family = parts[1] == "TCP4" ? AF_INET : parts[1] == "TCP6" ? AF_INET6 : -1;
    return family >= 0 && parse_address(family, parts[2], h.source_addr) && parse_address(family, parts[3], h.dest_addr) &&
           parse_port(parts[4], h.source_port) && parse_port(parts[5], h.dest_port);
}

// Type-length-value records after the addresses; only PP2_TYPE_SSL changes what we report.
bool parse_tlvs(const unsigned char* p, size_t n, proxy_header& h) {
    while (n > 0) {
        if (n < 3) return false;
        size_t len = be16(p + 1);
        if (n < 3 + len) return false;
        if (p[0] == pp2_type_ssl && len >= 1 && (p[3] & pp2_client_ssl)) h.tls = true;
        p += 3 + len, n -= 3 + len;
    }
    return true;
}

bool parse_v2(const unsigned char* p, size_t total, proxy_header& h) {
    h.version = 2;
    if ((p[12] >> 4) != 2) return false;
    unsigned cmd = p[12] & 0xF, family = p[13] >> 4, transport = p[13] & 0xF;
    if (cmd == cmd_local) return h.local = true;  // health checks from the proxy itself: addresses ignored
    if (cmd != cmd_proxy) return false;
    if (family == af_unspec || family == af_unix) return h.local = true;
    if ((family != af_inet && family != af_inet6) || transport != transport_stream) return false;
    size_t alen = family == af_inet ? 4 : 16, block = 2 * alen + 4;
    size_t body = total - v2_fixed;
    if (body < block) return false;
    const unsigned char* a = p + v2_fixed;
    int af = family == af_inet ? AF_INET : AF_INET6;
    char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
    if (!::inet_ntop(af, a, src, sizeof src) || !::inet_ntop(af, a + alen, dst, sizeof dst)) return false;
    h.source_addr = src, h.dest_addr = dst;
    h.source_port = int(be16(a + 2 * alen)), h.dest_port = int(be16(a + 2 * alen + 2));
    return parse_tlvs(a + block, body - block, h);
}

proxy_scan scan_v1(std::string_view prefix) {
    proxy_scan r;
    size_t lf = prefix.substr(0, proxy_v1_max).find('\n');
    if (lf == std::string_view::npos) {
        if (prefix.size() >= proxy_v1_max) r.result = proxy_scan::state::invalid;
        return r;
    }
    bool ok = lf > 0 && prefix[lf - 1] == '\r' && parse_v1(prefix.substr(0, lf - 1), r.header);
    r.result = ok ? proxy_scan::state::complete : proxy_scan::state::invalid;
    r.length = lf + 1;
    return r;
}

proxy_scan scan_v2(std::string_view prefix) {
    proxy_scan r;
    if (prefix.size() < v2_fixed) return r;
    auto* p = reinterpret_cast<const unsigned char*>(prefix.data());
    size_t total = v2_fixed + be16(p + 14);
    if (prefix.size() < total) return r;
    r.result = parse_v2(p, total, r.header) ? proxy_scan::state::complete : proxy_scan::state::invalid;
    r.length = total;
    return r;
}

// An address as 16 bytes (IPv4 in the first 4); false if `text` is neither family.
}  // namespace

proxy_scan scan_proxy_header(std::string_view prefix) {
    if (prefix.empty()) return {};
    if (agrees(prefix, v1_signature)) return prefix.size() < v1_signature.size() ? proxy_scan{} : scan_v1(prefix);
    if (agrees(prefix, v2_signature)) return prefix.size() < v2_signature.size() ? proxy_scan{} : scan_v2(prefix);
    return {proxy_scan::state::invalid, 0, {}};
}

}  // namespace gcorn::http
