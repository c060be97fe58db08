#include "master/ctl_client.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "sys/fd.hpp"

namespace gcorn::master {
namespace {

// The master answers within its own deadline (5 s per client); this only guards against a wedged one.
constexpr int reply_timeout_s = 10;

int unreachable(const std::string& path, const char* what) {
    std::fprintf(stderr, "gcorn ctl: cannot %s %s: %s\n", what, path.c_str(), std::strerror(errno));
    return 2;
}

}  // namespace

int ctl_main(const std::string& path, const std::vector<std::string>& words) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) {
        std::fprintf(stderr, "gcorn ctl: socket path too long: %s\n", path.c_str());
        return 2;
    }
    path.copy(addr.sun_path, path.size());
    sys::unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return unreachable(path, "create a socket for");
    timeval tv{reply_timeout_s, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return unreachable(path, "connect to");
    std::string line;
    for (auto& w : words) line += (line.empty() ? "" : " ") + w;
    line += '\n';
    for (size_t sent = 0; sent < line.size();) {
        ssize_t n = ::send(fd.get(), line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return unreachable(path, "send to");
        sent += size_t(n);
    }
    std::string reply;
    char buf[65536];
    for (;;) {
        ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return unreachable(path, "read the reply from");
        if (n == 0) break;
        reply.append(buf, size_t(n));
    }
    bool failed = reply.starts_with("error:");
    std::fputs(reply.c_str(), failed ? stderr : stdout);
    return failed ? 1 : 0;
}

}  // namespace gcorn::master
