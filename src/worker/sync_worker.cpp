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
#include "worker/poll_waiter.hpp"
#include "worker/transport.hpp"

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

}  // namespace

int run_sync(const sys::worker_args& args, const wsgi::application& app, const transport& t) {
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
                auto info = t.describe(fd, args.listeners[i]);
                poll_waiter waiter;
                auto stream = t.open(fd, waiter);
                if (t.prepare(fd, *stream, waiter, info, http::clock::now() + opt.head_timeout)) {
                    http::request_reader reader(*stream, opt.limits, opt.io_timeout);
                    serve(*stream, reader, app, info, opt, state, true);
                }
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
