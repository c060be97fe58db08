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
#include "worker/blocking_stream.hpp"
#include "worker/serve.hpp"

namespace gcorn::worker {
namespace {

// Signals reach the loop through a self-pipe, so poll(2) wakes up for them.
int signal_pipe[2] = {-1, -1};

void on_signal(int sig) {
    int saved = errno;
    char c = char(sig);
    [[maybe_unused]] auto n = ::write(signal_pipe[1], &c, 1);
    errno = saved;
}

void on_fast_exit(int) { ::_exit(0); }  // SIGINT: stop now, in-flight request or not

void install_signals() {
    ::pipe2(signal_pipe, O_NONBLOCK | O_CLOEXEC);
    struct sigaction sa{};
    sa.sa_handler = on_signal;
    for (int sig : {SIGTERM, SIGQUIT, SIGUSR1}) ::sigaction(sig, &sa, nullptr);
    sa.sa_handler = on_fast_exit;
    ::sigaction(SIGINT, &sa, nullptr);
    sa.sa_handler = SIG_IGN;
    for (int sig : {SIGHUP, SIGTTIN, SIGTTOU, SIGWINCH, SIGUSR2}) ::sigaction(sig, &sa, nullptr);
}

// One named handler per signal the worker acts on.
void handle_signals(serve_state& state) {
    char sigs[64];
    for (ssize_t n; (n = ::read(signal_pipe[0], sigs, sizeof sigs)) > 0;) {
        for (ssize_t i = 0; i < n; ++i) {
            if (sigs[i] == SIGTERM || sigs[i] == SIGQUIT) state.stopping = true;
            else if (sigs[i] == SIGUSR1) log::reopen();
        }
    }
}

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
    install_signals();
    serve_state state;
    state.max_requests = args.max_requests;
    auto opt = serve_options::from(s, false);
    std::vector<pollfd> fds;
    for (auto& l : args.listeners) fds.push_back({l.fd.get(), POLLIN, 0});
    fds.push_back({signal_pipe[0], POLLIN, 0});
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
        if (fds.back().revents) handle_signals(state);
        for (size_t i = 0; i + 1 < fds.size() && !state.stopping && !state.exhausted(); ++i) {
            if (!fds[i].revents) continue;
            // Accept until the queue is empty (other workers compete for the same listener).
            for (int fd; !state.exhausted() && (fd = ::accept4(fds[i].fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
                sys::unique_fd conn(fd);
                blocking_stream stream(fd);
                serve(stream, app, describe_connection(fd, args.listeners[i], s), opt, state);
                args.slot.requests.store(state.requests, std::memory_order_relaxed);
                args.slot.beat();
                handle_signals(state);
                if (state.stopping) break;
            }
        }
    }
    if (state.exhausted()) spdlog::info("Autorestarting worker after current request.");
    spdlog::info("Worker exiting (pid: {})", ::getpid());
    return 0;
}

}  // namespace gcorn::worker
