// The sync driver (Gunicorn's SyncWorker): one request at a time, served inline, then close (Connection: close
// on every response, as Gunicorn). Unlike Gunicorn's, it waits for request heads on a small reactor of its own —
// poll(2) over the listeners, the signal pipe and the connections still sending their heads — so a client
// trickling its head costs only its buffer, never the worker (slowloris). The GIL is released while it polls.
#include <algorithm>
#include <chrono>
#include <list>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include "py/gil.hpp"
#include "sys/fd.hpp"
#include "worker/accept_pause.hpp"
#include "worker/base.hpp"
#include "worker/drivers.hpp"
#include "worker/incoming_head.hpp"
#include "worker/poll_waiter.hpp"

namespace gcorn::worker {
namespace {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

// A stop's last call for heads still arriving: a request already on its way gets answered, without holding the
// stop up for long (as the reactor's idle connections get).
constexpr std::chrono::milliseconds max_last_call = 2s;

class sync_worker final : public worker_base {
public:
    sync_worker(const sys::worker_args& args, const wsgi::application& app, const transport& t)
        : worker_base(args, app, t, false), driver_reads_heads_(incoming_head::driver_reads_heads(s_)) {}

private:
    // A connection accepted and still sending its request head: held here, not by serve().
    struct arriving {
        sys::unique_fd fd;
        const sys::listener* listener;
        sys::endpoint peer;
        incoming_head head;
        clock::time_point until;  // the head's deadline (head_timeout from accept)
    };

    // Wait for something to do, then: signals, heads that arrived (served in turn), heads past their deadline,
    // new connections. A stop ends it once the heads on their way have had their last call.
    void loop() override {
        while (!stopping() || (!arriving_.empty() && !stop_overdue())) {
            notify();
            if (!wait()) continue;
            take_signals();
            read_heads();
            expire_heads();
            for (size_t i = 0; i < args_.listeners.size() && accepting(); ++i)
                if (fds_[i].revents) accept_all(args_.listeners[i]);
        }
    }

    // One poll over the listeners (while accepting), the signal pipe and the arriving heads, at most a heartbeat
    // long so the scoreboard hears from us while clients are slow. False if nothing is ready.
    bool wait() {
        fds_.clear();
        for (auto& l : args_.listeners) fds_.push_back({accepting() ? l.fd.get() : -1, POLLIN, 0});
        fds_.push_back({signal_fd(), POLLIN, 0});
        auto now = clock::now();
        auto wake = now + heartbeat_interval();
        for (auto& a : arriving_) {
            fds_.push_back({a.fd.get(), POLLIN, 0});
            wake = std::min(wake, a.until);
        }
        if (paused_until_ > now) wake = std::min(wake, paused_until_);
        auto ms = std::max<long long>(0, std::chrono::ceil<std::chrono::milliseconds>(wake - now).count());
        int ready;
        {
            py::gil_release unlocked;
            ready = ::poll(fds_.data(), fds_.size(), int(ms));
        }
        return ready > 0 || !arriving_.empty();  // a timeout may be a head's deadline
    }

    // Reads every arriving head that has bytes; the complete ones are served, in the order they came.
    void read_heads() {
        size_t i = args_.listeners.size() + 1;
        for (auto it = arriving_.begin(); it != arriving_.end(); ++i) {
            if (!fds_[i].revents) {
                ++it;
                continue;
            }
            auto state = it->head.read_from(it->fd.get());
            if (state == incoming_head::state::arriving) {
                ++it;
                continue;
            }
            auto a = std::move(*it);
            it = arriving_.erase(it);
            if (state == incoming_head::state::complete) serve_one(std::move(a));
            else closed_one();
        }
    }

    // A head past its deadline: 408 if the client started one, then close (incoming_head::time_out).
    void expire_heads() {
        auto now = clock::now();
        bool overdue = stop_overdue();  // a quick stop, or graceful_timeout passed: no more waiting
        auto expired = std::erase_if(arriving_, [&](arriving& a) {
            if (a.until > now && !overdue) return false;
            a.head.time_out(a.fd.get());
            return true;
        });
        if (expired) closed_one();
    }

    // Accepts until the queue is empty (other workers compete for the same listener), the worker stops, too many
    // heads are arriving (worker_connections), or the process is out of file descriptors.
    void accept_all(const sys::listener& l) {
        while (accepting()) {
            sys::endpoint peer;
            int fd = sys::accept_connection(l, peer);
            if (fd < 0) {
                if (errno == EINTR) continue;
                if (pause_.failed(errno)) paused_until_ = clock::now() + pause_.delay();
                return;
            }
            pause_.succeeded();
            args_.slot.counters.add(sys::metrics::at::connections);
            arriving a{sys::unique_fd(fd), &l, std::move(peer), incoming_head(opt_.limits), clock::now() + opt_.head_timeout};
            // Most clients send their head with the connection: read it now rather than after another poll.
            auto state = driver_reads_heads_ ? a.head.read_from(fd) : incoming_head::state::complete;
            if (state == incoming_head::state::complete) serve_one(std::move(a));
            else if (state == incoming_head::state::arriving) arriving_.push_back(std::move(a)), count_open();
        }
    }

    // A complete head (or a connection the driver cannot read: TLS, PROXY): serve() inline, then close.
    void serve_one(arriving a) {
        int fd = a.fd.get();
        connection c(fd, t_.open(fd, poll_waiter{&args_.slot, heartbeat_interval()}), t_.adopt(fd, std::move(a.peer), *a.listener, false),
                     opt_);
        a.head.hand_to(c.reader);
        c.ready_at = clock::now();  // queue time starts when the request is complete, not while the client typed it
        count_open(1);
        serve(c, app_, t_, opt_, state_);
        args_.slot.beat();  // (the parent check waits for the next poll: a syscall per request saved)
        take_signals();
        check_exhausted();
        closed_one();
    }

    // A connection ended: a pause for want of descriptors ends (one was just freed).
    void closed_one() {
        count_open();
        paused_until_ = {};
    }
    void count_open(size_t serving = 0) {
        args_.slot.counters.connections_open.store(uint32_t(arriving_.size() + serving), std::memory_order_relaxed);
    }

    // New connections while not stopping, not out of descriptors, and under worker_connections heads arriving
    // (each costs a descriptor and its bytes so far).
    bool accepting() const {
        return !stopping() && arriving_.size() < size_t(s_.worker_connections) && clock::now() >= paused_until_;
    }

    // Heads on their way get a last call (a request that reached us is answered, zero-downtime restarts).
    void on_stop() override {
        auto last_call = clock::now() + std::min<std::chrono::milliseconds>(opt_.head_timeout, max_last_call);
        for (auto& a : arriving_) a.until = std::min(a.until, last_call);
    }

    const bool driver_reads_heads_;
    std::list<arriving> arriving_;
    std::vector<pollfd> fds_;  // rebuilt by each wait(): listeners, the signal pipe, then arriving_ in order
    accept_pause pause_;
    clock::time_point paused_until_{};
};

}  // namespace

int run_sync(const sys::worker_args& args, const wsgi::application& app, const transport& t) {
    return sync_worker(args, app, t).run();
}

}  // namespace gcorn::worker
