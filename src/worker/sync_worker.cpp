#include "worker/sync_worker.hpp"

#include <algorithm>
#include <csignal>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include <spdlog/spdlog.h>

#include "log/log.hpp"
#include "py/gil.hpp"
#include "hooks/hooks.hpp"
#include "worker/serve.hpp"
#include "worker/signals.hpp"
#include "worker/socket_stream.hpp"

namespace gcorn::worker {
namespace {

// One named handler per signal the worker acts on.
void handle_signals(int fd, serve_state& state) {
    drain_signals(fd, [&](int sig) {
        if (sig == SIGINT) fast_exit();
        if (sig == SIGTERM || sig == SIGQUIT) state.stopping = true;
        else if (sig == SIGUSR1) log::reopen();
    });
}

// The sync worker's way of waiting: poll(2) with the GIL released so other Python threads run.
struct poll_waiter {
    bool wait(int fd, bool writable, http::deadline until) {
        for (;;) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - http::clock::now()).count();
            if (left <= 0) return false;
            pollfd p{fd, short(writable ? POLLOUT : POLLIN), 0};
            int rc;
            {
                py::gil_release unlocked;
                rc = ::poll(&p, 1, int(std::min<long long>(left, 60'000)));
            }
            if (rc > 0) return true;
            if (rc < 0 && errno != EINTR) throw http::stream_error(http::stream_error::kind::closed, "poll failed");
        }
    }
    void yield() {}
};

bool trusted(const std::string& addr, const config::settings& s) {
    auto& allowed = s.forwarded_allow_ips;
    return std::find(allowed.begin(), allowed.end(), "*") != allowed.end() ||
           std::find(allowed.begin(), allowed.end(), addr) != allowed.end();
}

}  // namespace

wsgi::connection_info describe_connection(int fd, const sys::listener& l, const config::settings& s) {
    wsgi::connection_info c;
    auto peer = sys::peer_of(fd);
    c.remote_addr = peer.host;
    c.remote_port = peer.port;
    c.server_name = l.host;
    c.server_port = l.port;
    c.trusted_proxy = l.is_unix || trusted(peer.host, s);  // a unix socket's peer is the local proxy
    return c;
}

int run_sync(const sys::worker_args& args, const wsgi::application& app) {
    auto& s = args.settings;
    int signal_fd = install_worker_signals(hooks::configured(s, "worker_int"));
    serve_state state;
    state.max_requests = args.max_requests;
    state.slot = &args.slot;
    auto opt = serve_options::from(s, false);
    std::vector<pollfd> fds;
    for (auto& l : args.listeners) fds.push_back({l.fd.get(), POLLIN, 0});
    fds.push_back({signal_fd, POLLIN, 0});
    int wake_ms = s.timeout > 0 ? int(std::clamp(s.timeout * 500.0, 100.0, 1000.0)) : 1000;
    spdlog::debug("Worker {} ready", ::getpid());

    while (!state.stopping && !state.exhausted()) {
        args.slot.beat();
        if (::getppid() != args.master_pid) {
            spdlog::info("Parent changed, shutting down: {}", ::getpid());
            break;
        }
        int ready;
        {
            py::gil_release unlocked;
            ready = ::poll(fds.data(), fds.size(), wake_ms);
        }
        if (ready <= 0) continue;
        if (fds.back().revents) handle_signals(signal_fd, state);
        for (size_t i = 0; i + 1 < fds.size() && !state.stopping && !state.exhausted(); ++i) {
            if (!fds[i].revents) continue;
            // Accept until the queue is empty (other workers compete for the same listener).
            for (int fd; !state.exhausted() && (fd = ::accept4(fds[i].fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
                sys::unique_fd conn(fd);
                socket_stream<poll_waiter> stream(fd, {});
                http::request_reader reader(stream, opt.limits, opt.io_timeout);
                serve(stream, reader, app, describe_connection(fd, args.listeners[i], s), opt, state, true);
                args.slot.requests.store(state.requests, std::memory_order_relaxed);
                args.slot.beat();
                handle_signals(signal_fd, state);
                if (state.stopping) break;
            }
        }
    }
    if (state.exhausted()) spdlog::info("Autorestarting worker after current request.");
    spdlog::info("Worker exiting (pid: {})", ::getpid());
    return 0;
}

}  // namespace gcorn::worker
