#include "log/statsd.hpp"

#include <cstdio>
#include <netdb.h>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace gcorn::log::statsd {
namespace {

struct client {
    int fd = -1;
    std::string prefix, tags;  // prefix ends in '.', tags are "|#a:b,c:d" (dogstatsd)
};

client& the() {
    static client c;
    return c;
}

int connect_unix(const std::string& path) {
    sockaddr_un addr{};
    if (path.size() >= sizeof addr.sun_path) throw std::runtime_error("statsd_host: unix socket path too long");
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, path.size());
    int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);  // nobody listens yet: as Gunicorn, send nothing rather than fail
        return -1;
    }
    return fd;
}

int connect_udp(const std::string& address) {
    auto colon = address.rfind(':');
    if (colon == std::string::npos) throw std::runtime_error("statsd_host: '" + address + "' is not HOST:PORT");
    auto host = address.substr(0, colon), port = address.substr(colon + 1);
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    addrinfo hints{}, *found = nullptr;
    hints.ai_socktype = SOCK_DGRAM;
    if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0 || !found)
        throw std::runtime_error("statsd_host: cannot resolve '" + address + "'");
    int fd = ::socket(found->ai_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd >= 0 && ::connect(fd, found->ai_addr, found->ai_addrlen) != 0) ::close(fd), fd = -1;
    ::freeaddrinfo(found);
    return fd;
}

void send(std::string_view name, std::string_view value_and_type) noexcept {
    auto& c = the();
    if (c.fd < 0) return;
    std::string packet;
    packet.reserve(c.prefix.size() + name.size() + value_and_type.size() + c.tags.size() + 1);
    packet.append(c.prefix).append(name).append(":").append(value_and_type).append(c.tags);
    [[maybe_unused]] auto n = ::send(c.fd, packet.data(), packet.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
}

}  // namespace

void setup(const config::settings& s) {
    auto& c = the();
    if (c.fd >= 0) ::close(c.fd), c.fd = -1;
    if (s.statsd_host.empty()) return;
    const std::string& h = s.statsd_host;
    c.fd = h.starts_with("unix://") ? connect_unix(h.substr(7))
         : h.starts_with("unix:")   ? connect_unix(h.substr(5))
                                    : connect_udp(h);
    c.prefix = s.statsd_prefix;  // Gunicorn adds one '.' if the prefix has none
    if (!c.prefix.empty() && c.prefix.back() != '.') c.prefix += '.';
    c.tags = s.dogstatsd_tags.empty() ? "" : "|#" + s.dogstatsd_tags;
}

bool enabled() noexcept { return the().fd >= 0; }

void request(std::chrono::steady_clock::duration took, int status) noexcept {
    if (!enabled()) return;
    char ms[32];
    std::snprintf(ms, sizeof ms, "%.3f|ms", std::chrono::duration<double, std::milli>(took).count());
    send("gunicorn.request.duration", ms);
    send("gunicorn.requests", "1|c|@1.0");
    send("gunicorn.request.status." + std::to_string(status), "1|c|@1.0");
}

void increment(std::string_view name) noexcept { send(name, "1|c|@1.0"); }

void gauge(std::string_view name, long long value) noexcept { send(name, std::to_string(value) + "|g"); }
void histogram(std::string_view name, long long value) noexcept { send(name, std::to_string(value) + "|h"); }

}  // namespace gcorn::log::statsd
