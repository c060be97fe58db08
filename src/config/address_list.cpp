#include "config/address_list.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <charconv>
#include <cstring>
#include <stdexcept>

namespace gcorn::config {
namespace {

bool parse_ip(const std::string& text, bool& v6, std::array<unsigned char, 16>& bytes) {
    bytes.fill(0);
    if (::inet_pton(AF_INET, text.c_str(), bytes.data()) == 1) return v6 = false, true;
    if (::inet_pton(AF_INET6, text.c_str(), bytes.data()) == 1) return v6 = true, true;
    return false;
}

bool matches(const std::array<unsigned char, 16>& a, const std::array<unsigned char, 16>& net, int prefix) {
    int whole = prefix / 8, bits = prefix % 8;
    if (std::memcmp(a.data(), net.data(), size_t(whole)) != 0) return false;
    if (bits == 0) return true;
    unsigned char mask = (unsigned char)(0xFF << (8 - bits));
    return (a[size_t(whole)] & mask) == (net[size_t(whole)] & mask);
}

}  // namespace

address_list::address_list(const std::vector<std::string>& entries) {
    for (auto& entry : entries) {
        if (entry == "*") {
            any_ = true;
            continue;
        }
        auto slash = entry.find('/');
        network n{};
        int prefix = -1;
        std::string_view bits = slash == std::string::npos ? "" : std::string_view(entry).substr(slash + 1);
        bool ok = parse_ip(entry.substr(0, slash), n.v6, n.bytes);
        if (ok && slash != std::string::npos) {
            auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), prefix);
            ok = !bits.empty() && ec == std::errc() && end == bits.data() + bits.size() && prefix >= 0;
        }
        int width = n.v6 ? 128 : 32;
        if (!ok || prefix > width) throw std::invalid_argument("'" + entry + "' is not an IP address or network");
        n.prefix = prefix < 0 ? width : prefix;
        networks_.push_back(n);
    }
}

bool address_list::contains(std::string_view address) const {
    if (any_) return true;
    bool v6;
    std::array<unsigned char, 16> a;
    if (address.empty() || !parse_ip(std::string(address), v6, a)) return false;
    // ::ffff:a.b.c.d (RFC 4291 §2.5.5.2) is an IPv4 peer on a dual-stack socket.
    static constexpr unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    std::array<unsigned char, 16> v4{};
    bool is_mapped = v6 && std::memcmp(a.data(), mapped, 12) == 0;
    if (is_mapped) std::memcpy(v4.data(), a.data() + 12, 4);
    return std::any_of(networks_.begin(), networks_.end(), [&](const network& n) {
        if (n.v6 == v6 && matches(a, n.bytes, n.prefix)) return true;
        return is_mapped && !n.v6 && matches(v4, n.bytes, n.prefix);
    });
}

}  // namespace gcorn::config
