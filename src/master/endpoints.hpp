// The master's own listeners (issue 12), never the app's: --metrics-bind answers /metrics (Prometheus text) and
// /healthz over HTTP, --control-socket answers `gcorn ctl` commands, one line in, one reply out. Each client is
// its own coroutine with a deadline and a size limit, so a slow or hostile client costs only itself.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <sys/types.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include "sys/listener.hpp"

namespace gcorn::master {

struct http_reply {
    int status;
    std::string content_type;
    std::string body;
};

// Serves GET/HEAD `path` -> reply on `l` until the io_context stops; returns the listening fd (the master's
// only: workers close it).
int serve_metrics(boost::asio::io_context& ioc, sys::listener l, std::function<http_reply(std::string_view path)> route);

// A unix socket at `path` (created with `mode`, a stale one replaced) that admits peers running as root or as
// this process's user; each sends one command line and gets `handle(line)`'s reply. Removes the file when destroyed.
class control_socket {
public:
    using handler = std::function<boost::asio::awaitable<std::string>(std::string line)>;
    control_socket(boost::asio::io_context& ioc, const std::string& path, int mode, handler handle);  // throws
    ~control_socket();
    int fd() const { return fd_; }  // the master's only: workers close it
    control_socket(const control_socket&) = delete;
    control_socket& operator=(const control_socket&) = delete;

private:
    std::string path_;
    int fd_ = -1;
    ino_t inode_ = 0;  // the socket file we created, to tell it from a successor's
};

}  // namespace gcorn::master
