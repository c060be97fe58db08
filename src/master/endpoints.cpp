#include "master/endpoints.hpp"

#include <cerrno>
#include <chrono>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <system_error>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <spdlog/spdlog.h>

namespace gcorn::master {
namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;
using namespace std::chrono_literals;
using stream = net::posix::stream_descriptor;

// A client gets this long for its whole exchange, and this much to say.
constexpr auto client_deadline = 5s;
constexpr size_t max_request_head = 8192, max_command_line = 4096;

// Closes the client's socket when its time is up, which fails whatever it is waiting for.
struct deadline {
    net::steady_timer timer;
    deadline(const std::shared_ptr<stream>& s) : timer(s->get_executor()) {
        timer.expires_after(client_deadline);
        timer.async_wait([weak = std::weak_ptr<stream>(s)](boost::system::error_code ec) {
            if (auto s = weak.lock(); s && !ec) s->close(ec);
        });
    }
};

// Accepts on `fd` and runs `client` for each connection, each its own coroutine.
template <class Client>
net::awaitable<void> accept_loop(int fd, Client client) {
    auto ex = co_await net::this_coro::executor;
    stream listener(ex, fd);
    for (boost::system::error_code ec;;) {
        co_await listener.async_wait(stream::wait_read, net::redirect_error(net::use_awaitable, ec));
        if (ec) break;
        for (int c; (c = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;)
            net::co_spawn(ex, client(std::make_shared<stream>(ex, c)), net::detached);
    }
    listener.release();
}

// After the reply: FIN now (a worker forked meanwhile may hold a copy of the socket, which would keep the client
// waiting for the end), then read what the client still sends until it closes, so closing sends no reset that
// could destroy the reply in flight. The client's deadline bounds it.
net::awaitable<void> finish(stream& s) {
    ::shutdown(s.native_handle(), SHUT_WR);
    char scratch[4096];
    boost::system::error_code ec;
    while (!ec) co_await s.async_read_some(net::buffer(scratch), net::redirect_error(net::use_awaitable, ec));
}

net::awaitable<void> http_client(std::shared_ptr<stream> s, const std::function<http_reply(std::string_view)>& route) {
    deadline d(s);
    boost::beast::flat_buffer buffer;
    http::request_parser<http::empty_body> parser;
    parser.header_limit(max_request_head);
    boost::system::error_code ec;
    co_await http::async_read_header(*s, buffer, parser, net::redirect_error(net::use_awaitable, ec));
    if (ec) co_return;  // garbage, too big or too slow: nothing worth answering
    auto& req = parser.get();
    http_reply r{405, "text/plain; charset=utf-8", "GET or HEAD only\n"};
    if (req.method() == http::verb::get || req.method() == http::verb::head) {
        auto target = std::string_view(req.target().data(), req.target().size());
        r = route(target.substr(0, target.find('?')));
    }
    http::response<http::string_body> res{http::status(r.status), req.version()};
    res.set(http::field::content_type, r.content_type);
    res.set(http::field::cache_control, "no-store");
    res.keep_alive(false);
    res.body() = std::move(r.body);
    res.prepare_payload();
    if (req.method() == http::verb::head) res.body().clear();  // Content-Length stays the GET's
    co_await http::async_write(*s, res, net::redirect_error(net::use_awaitable, ec));
    co_await finish(*s);
}

bool peer_allowed(int fd) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
    return cred.uid == 0 || cred.uid == ::geteuid();
}

net::awaitable<void> control_client(std::shared_ptr<stream> s, const control_socket::handler& handle) {
    deadline d(s);
    boost::system::error_code ec;
    std::string reply;
    if (!peer_allowed(s->native_handle())) {
        reply = "error: permission denied (root or the master's user only)\n";
    } else {
        std::string line;
        co_await net::async_read_until(*s, net::dynamic_buffer(line, max_command_line), '\n',
                                       net::redirect_error(net::use_awaitable, ec));
        if (ec == net::error::not_found) reply = "error: command line too long\n";
        else if (ec && line.empty()) co_return;  // gone, or silent until its deadline
        else reply = co_await handle(line.substr(0, line.find('\n')));
    }
    co_await net::async_write(*s, net::buffer(reply), net::redirect_error(net::use_awaitable, ec));
    co_await finish(*s);
}

}  // namespace

int serve_metrics(net::io_context& ioc, sys::listener l, std::function<http_reply(std::string_view)> route) {
    int fd = l.fd.release();  // the master keeps it open until it exits
    net::co_spawn(ioc, accept_loop(fd, [route = std::move(route)](std::shared_ptr<stream> s) {
                      return http_client(std::move(s), route);
                  }),
                  net::detached);
    return fd;
}

control_socket::control_socket(net::io_context& ioc, const std::string& path, int mode, handler handle)
    : path_(path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof addr.sun_path)
        throw std::runtime_error("control_socket: '" + path + "' is not a usable unix socket path");
    path.copy(addr.sun_path, path.size());
    struct stat st{};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) throw std::runtime_error("control_socket: " + path + " exists and is not a socket");
        ::unlink(path.c_str());  // a previous master's
    }
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "control_socket: socket");
    mode_t old = ::umask(0777 & ~mode);  // created with its final mode: never briefly open to others
    int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    int err = errno;
    ::umask(old);
    if (rc != 0 || ::listen(fd, 16) != 0) {
        ::close(fd);
        throw std::system_error(rc != 0 ? err : errno, std::generic_category(), "control_socket: cannot listen at " + path);
    }
    ::chmod(path.c_str(), mode);
    fd_ = fd;
    if (struct stat mine{}; ::stat(path.c_str(), &mine) == 0) inode_ = mine.st_ino;  // the file, not the socket
    net::co_spawn(ioc, accept_loop(fd, [handle = std::move(handle)](std::shared_ptr<stream> s) {
                      return control_client(std::move(s), handle);
                  }),
                  net::detached);
}

// Only if the file is still ours: a master started by USR2 has replaced it with its own by now.
control_socket::~control_socket() {
    struct stat there{};
    if (::stat(path_.c_str(), &there) == 0 && there.st_ino != inode_) return;
    ::unlink(path_.c_str());
}

}  // namespace gcorn::master
