// The sync driver (Gunicorn's SyncWorker): poll the listeners and the signal pipe, accept, serve the connection
// inline, close (Connection: close on every response, as Gunicorn). The GIL is released while it polls.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include "py/gil.hpp"
#include "sys/fd.hpp"
#include "worker/base.hpp"
#include "worker/drivers.hpp"
#include "worker/poll_waiter.hpp"

namespace gcorn::worker {
namespace {

class sync_worker final : public worker_base {
public:
    sync_worker(const sys::worker_args& args, const wsgi::application& app, const transport& t)
        : worker_base(args, app, t, false) {}

private:
    void loop() override {
        std::vector<pollfd> fds;
        for (auto& l : args_.listeners) fds.push_back({l.fd.get(), POLLIN, 0});
        fds.push_back({signal_fd(), POLLIN, 0});
        auto wake = int(heartbeat_interval().count());
        while (!stopping()) {
            notify();
            int ready;
            {
                py::gil_release unlocked;
                ready = ::poll(fds.data(), fds.size(), wake);
            }
            if (ready <= 0) continue;
            take_signals();
            for (size_t i = 0; i + 1 < fds.size() && !stopping(); ++i)
                if (fds[i].revents) accept_all(args_.listeners[i]);
        }
    }

    // Accepts until the queue is empty (other workers compete for the same listener) or the worker stops.
    void accept_all(const sys::listener& l) {
        for (int fd; !stopping() && (fd = ::accept4(l.fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
            sys::unique_fd owner(fd);
            connection c(fd, t_.open(fd, poll_waiter{&args_.slot, heartbeat_interval()}), t_.adopt(fd, l, false), opt_);
            c.ready_at = std::chrono::steady_clock::now();
            auto& m = args_.slot.counters;
            m.add(sys::metrics::at::connections);
            m.connections_open.store(1, std::memory_order_relaxed);
            serve(c, app_, t_, opt_, state_);
            m.connections_open.store(0, std::memory_order_relaxed);
            args_.slot.beat();  // (the parent check waits for the next poll: a syscall per request saved)
            take_signals();
            check_exhausted();
        }
    }
};

}  // namespace

int run_sync(const sys::worker_args& args, const wsgi::application& app, const transport& t) {
    return sync_worker(args, app, t).run();
}

}  // namespace gcorn::worker
