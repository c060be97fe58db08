// Trust by peer address (forwarded_allow_ips, proxy_allow_ips): the one parser of address and CIDR network lists,
// used by the settings validators and by the workers that match peers against them. Knows nothing of sockets.
#pragma once
#include <array>
#include <string>
#include <string_view>
#include <vector>

namespace gcorn::config {

// Front ends trusted by address (forwarded_allow_ips, proxy_allow_ips): "*" for any, single addresses and
// CIDR networks ("10.0.0.0/8", "fd00::/8"), as Gunicorn 22 accepts. An IPv4-mapped IPv6 peer
// ("::ffff:10.1.2.3") matches the IPv4 entries.
class address_list {
public:
    // Throws std::invalid_argument naming the entry that is neither an address nor a network.
    explicit address_list(const std::vector<std::string>& entries);
    bool contains(std::string_view address) const;

private:
    struct network {
        bool v6;
        std::array<unsigned char, 16> bytes;
        int prefix;  // leading bits that must match
    };
    std::vector<network> networks_;
    bool any_ = false;
};

}  // namespace gcorn::config
