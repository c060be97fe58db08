// Listening sockets from `bind` addresses: HOST:PORT, [IPV6]:PORT, unix:PATH, fd://N (DESIGN §1).
// Opened by the master before forking so all workers share them.
#pragma once
#include <string>
#include <vector>

#include "sys/fd.hpp"

namespace gcorn::sys {

struct listener {
    unique_fd fd;
    std::string name;       // as shown in logs: "http://127.0.0.1:8000", "unix:/run/x.sock"
    std::string host, port; // SERVER_NAME / SERVER_PORT for the environ
    bool is_unix = false;
    std::string unix_path;  // removed on shutdown
};

// Connections waiting in a TCP listener's accept queue (Linux reports it as TCP_INFO's tcpi_unacked on a
// listening socket); -1 where it cannot be known (unix sockets).
long accept_queue_length(const listener& l);

struct listen_options {
    int backlog = 2048;
    bool reuse_port = false;
    int umask = 0;  // applied to unix sockets
};

// Opens every address (non-blocking, close-on-exec). Throws std::runtime_error naming the address.
std::vector<listener> open_listeners(const std::vector<std::string>& addresses, const listen_options& opt);

// reuse_port: a worker's own listening socket on the same TCP address as `shared` (SO_REUSEPORT), so the
// kernel balances connections over per-worker accept queues. Unix sockets are returned as shared.
// Throws std::runtime_error.
listener own_listener(const listener& shared, int backlog);

// Takes over an already listening socket (fd://N, systemd's LISTEN_FDS, a USR2 hand-over), naming it from
// getsockname. Throws std::runtime_error if `fd` is not a listening socket.
listener adopt_listener(int fd);

// Clears close-on-exec on the listeners so a re-executed master inherits them; returns "fd1,fd2,...".
std::string inheritable_fds(const std::vector<listener>& listeners);

// A connection's peer or local address as text and port ("" and 0 for unix sockets).
struct endpoint {
    std::string host;
    int port = 0;
};
// accept4(2): the next connection on `l`, non-blocking and close-on-exec, with its peer's address (read by the
// same call: no getpeername per connection); -1 with errno as accept4 left it.
int accept_connection(const listener& l, endpoint& peer);

}  // namespace gcorn::sys
