// One wait bounded by a deadline: an operation (a descriptor becoming ready, a posted job) races a timer, the
// first to complete wins and the other is dropped by id (DESIGN §3.1 (3): a waiter is resumed at most once per
// wait). Written once and used by every wait of the hub and by the reactor's idle keep-alive sockets.
// Plain Asio: knows nothing of greenlets or Python.
#pragma once
#include <chrono>
#include <cstdint>
#include <utility>

#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>

namespace gcorn::hub {

namespace net = boost::asio;
using clock = std::chrono::steady_clock;
using deadline = clock::time_point;
inline constexpr deadline no_deadline = deadline::max();

enum class woke { ready, timeout, cancelled };

// Lives in heap state that the completion handler keeps alive (the handler's captures own it), never on a
// greenlet's stack (DESIGN §3.1 (2)). One wait at a time.
class deadline_wait {
public:
    explicit deadline_wait(const net::any_io_executor& ex) : timer_(ex) {}

    // Starts a wait. `op(handler)` registers the operation, which calls handler(error_code) once; `done(woke)`
    // runs at most once, for whichever of the operation (ready, or cancelled on error) and the deadline comes
    // first. `done` is copied into both halves: keep its captures cheap (a shared_ptr and a pointer).
    template <class Op, class Done>
    void start(Op&& op, deadline until, Done done) {
        uint64_t id = begin(until);
        std::forward<Op>(op)([this, id, done](boost::system::error_code ec) mutable {
            if (settle(id)) done(ec ? woke::cancelled : woke::ready);
        });
        if (timed_) arm(id, std::move(done));
    }

    // A wait with no operation of its own: it ends at the deadline or when settle() is called from outside.
    template <class Done>
    void start_timer(deadline until, Done done) {
        uint64_t id = begin(until);
        if (timed_) arm(id, std::move(done));
    }

    // Ends the current wait from outside (a wakeup, a thrown exception, a close): true if it was still running,
    // i.e. the caller won the race and must resume the waiter itself. Idempotent.
    bool settle() noexcept { return settle(id_); }

    bool active() const noexcept { return active_; }
    deadline expiry() const noexcept { return until_; }

private:
    uint64_t begin(deadline until) noexcept {
        settle();  // a wait still running is over: its completions now find another id
        active_ = true;
        until_ = until;
        timed_ = until != no_deadline;
        return id_;
    }

    template <class Done>
    void arm(uint64_t id, Done done) {
        timer_.expires_at(until_);
        timer_.async_wait([this, id, done = std::move(done)](boost::system::error_code ec) mutable {
            if (!ec && settle(id)) done(woke::timeout);
        });
    }

    bool settle(uint64_t id) noexcept {
        if (id != id_ || !active_) return false;
        active_ = false;
        ++id_;
        if (timed_) {
            timed_ = false;
            timer_.cancel();
        }
        return true;
    }

    net::steady_timer timer_;
    deadline until_ = no_deadline;
    uint64_t id_ = 0;
    bool active_ = false;
    bool timed_ = false;
};

}  // namespace gcorn::hub
