#include "sys/listener.hpp"

#include <arpa/inet.h>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <memory>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

namespace gcorn::sys {
namespace {

[[noreturn]] void fail(const std::string& address, const std::string& why) {
    throw std::runtime_error("cannot listen on '" + address + "': " + why);
}

// An IPv4/IPv6 address as text and port; empty for other families (unix sockets).
endpoint to_endpoint(const sockaddr_storage& ss) {
    char text[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET6) {
        auto* s6 = reinterpret_cast<const sockaddr_in6*>(&ss);
        ::inet_ntop(AF_INET6, &s6->sin6_addr, text, sizeof text);
        return {text, ntohs(s6->sin6_port)};
    }
    if (ss.ss_family == AF_INET) {
        auto* s4 = reinterpret_cast<const sockaddr_in*>(&ss);
        ::inet_ntop(AF_INET, &s4->sin_addr, text, sizeof text);
        return {text, ntohs(s4->sin_port)};
    }
    return {};
}

void set_flags(int fd) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
}

listener open_unix(const std::string& address, const std::string& path, const listen_options& opt) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.size() >= sizeof sa.sun_path) fail(address, "path too long");
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) fail(address, std::strerror(errno));
    struct stat st{};
    if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());  // stale socket
    mode_t old = ::umask(mode_t(opt.umask));
    int rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    ::umask(old);
    if (rc != 0 || ::listen(fd.get(), opt.backlog) != 0) fail(address, std::strerror(errno));
    return listener{std::move(fd), "unix:" + path, path, "", true, path};
}

listener open_tcp(const std::string& address, std::string host, const std::string& port, const listen_options& opt) {
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    addrinfo hints{}, *res = nullptr;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    if (int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res); rc != 0)
        fail(address, ::gai_strerror(rc));
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, ::freeaddrinfo);
    unique_fd fd(::socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) fail(address, std::strerror(errno));
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (opt.reuse_port) ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (res->ai_family == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    // With reuse_port the master only holds the port (bound, not listening): a listening socket nobody
    // accepts on would get its share of the connections. Each worker listens on its own socket instead.
    if (::bind(fd.get(), res->ai_addr, res->ai_addrlen) != 0 || (!opt.reuse_port && ::listen(fd.get(), opt.backlog) != 0))
        fail(address, std::strerror(errno));
    return adopt_listener(fd.release());  // named from getsockname: port 0 shows the real port
}

listener open_one(const std::string& address, const listen_options& opt) {
    if (address.rfind("unix:", 0) == 0) return open_unix(address, address.substr(5), opt);
    if (address.rfind("fd://", 0) == 0) {
        int n = std::atoi(address.c_str() + 5);
        if (n < 0 || ::fcntl(n, F_GETFD) < 0) fail(address, "not an open file descriptor");
        return adopt_listener(n);
    }
    auto colon = address.rfind(':');
    bool bracketed = !address.empty() && address.front() == '[';
    if (colon == std::string::npos || (bracketed && address.find(']') > colon))
        return open_tcp(address, address, "8000", opt);  // Gunicorn: a bare host means port 8000
    auto port = address.substr(colon + 1);
    if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos) fail(address, "bad port");
    return open_tcp(address, address.substr(0, colon), port, opt);
}

}  // namespace

std::vector<listener> open_listeners(const std::vector<std::string>& addresses, const listen_options& opt) {
    std::vector<listener> out;
    for (auto& a : addresses) out.push_back(open_one(a, opt));
    return out;
}

listener own_listener(const listener& shared, int backlog) {
    if (shared.is_unix) return listener{unique_fd(::dup(shared.fd.get())), shared.name, shared.host, shared.port, true, ""};
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(shared.fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) fail(shared.name, std::strerror(errno));
    unique_fd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (ss.ss_family == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd.get(), backlog) != 0)
        fail(shared.name, std::strerror(errno));
    return listener{std::move(fd), shared.name, shared.host, shared.port, false, ""};
}

listener adopt_listener(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int type = 0;
    socklen_t optlen = sizeof type;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0 ||
        ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &optlen) != 0 || type != SOCK_STREAM)
        fail("fd://" + std::to_string(fd), "not a stream socket");
    set_flags(fd);
    if (ss.ss_family == AF_UNIX) {
        std::string path = reinterpret_cast<sockaddr_un*>(&ss)->sun_path;
        return listener{unique_fd(fd), "unix:" + path, path, "", true, ""};  // not ours to unlink
    }
    auto e = to_endpoint(ss);
    std::string shown = ss.ss_family == AF_INET6 ? "[" + e.host + "]" : e.host;
    return listener{unique_fd(fd), "http://" + shown + ":" + std::to_string(e.port), e.host, std::to_string(e.port),
                    false, ""};
}

std::string inheritable_fds(const std::vector<listener>& listeners) {
    std::string out;
    for (auto& l : listeners) {
        ::fcntl(l.fd.get(), F_SETFD, 0);
        out += (out.empty() ? "" : ",") + std::to_string(l.fd.get());
    }
    return out;
}

int accept_connection(const listener& l, endpoint& peer) {
    sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = ::accept4(l.fd.get(), reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) peer = to_endpoint(ss);
    return fd;
}

long accept_queue_length(const listener& l) {
    if (l.is_unix) return -1;
    tcp_info info{};
    socklen_t len = sizeof info;
    if (::getsockopt(l.fd.get(), IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return -1;
    return long(info.tcpi_unacked);
}

}  // namespace gcorn::sys
