// The reactor under gcorn.gevent.loop (gevent's loop interface, python/gcorn/gevent/loop.py): io readiness,
// timers, cross-thread wake-ups and signals on an Asio io_context, each watcher named by an id. What fired is
// collected and handed to Python in batches by poll(), so Python runs the watchers' callbacks outside any Asio
// handler, in the loop's own greenlet, as gevent expects. Knows nothing of gevent or greenlets.
//
// Signals do not use Asio's signal_set: its process-wide state is set up by the first io_context and is not
// usable in a worker forked from a master that has one. A plain handler marks the signal and writes a byte to a
// pipe made by this process, whose read end sits in the epoll set like any fd.
//
// io watchers are level-triggered, as libev's and libuv's are (a callback runs at every iteration while the fd
// stays readable), so they live in a private epoll set in level-triggered mode whose own fd the io_context
// watches; several watchers on one fd (gevent's read and write watchers of a socket) share its registration.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

namespace gcorn::hub {

namespace net = boost::asio;

class event_loop {
public:
    enum : int { readable = 1, writable = 2 };  // gevent's (libev's) EV_READ and EV_WRITE
    using fired = std::vector<std::pair<uint64_t, int>>;  // (watcher id, events; 0 for timers, signals, asyncs)

    // Runs on `ioc` (the worker's, when the loop is the hub's) or, if null, on an io_context of its own.
    explicit event_loop(net::io_context* ioc = nullptr);
    ~event_loop();
    event_loop(const event_loop&) = delete;
    event_loop& operator=(const event_loop&) = delete;

    uint64_t io_start(int fd, int events);  // fires while fd is ready for any of `events`, until io_stop
    void io_stop(uint64_t id);
    uint64_t timer_start(double seconds);   // fires once
    void timer_stop(uint64_t id);
    uint64_t async_new();                   // fires after async_send, once per batch of sends
    void async_send(uint64_t id);           // thread-safe
    void async_close(uint64_t id);
    uint64_t signal_start(int signum);      // fires when the process receives signum
    void signal_stop(uint64_t id);

    // Runs the reactor until something has fired (block) or only what is ready now (!block), and returns what
    // fired. `block` waits at most `max_wait` seconds when given (< 0: no bound). Call without the GIL.
    // nullopt: the io_context is not ours and its owner stopped it (the worker is stopping).
    std::optional<fired> poll(bool block, double max_wait = -1);
    bool owns_context() const { return own_ != nullptr; }
    // In a forked child: a private epoll set (the parent's is shared with it) holding the same registrations.
    void reinit();

    // Seconds on the monotonic clock, the loop's time base.
    static double now();
    net::io_context& context() { return *ioc_; }

private:
    struct io_watcher {
        int fd;
        int events;
    };
    struct per_fd {
        std::vector<uint64_t> watchers;
        uint32_t registered = 0;  // the epoll events currently asked for
    };
    void update_fd(int fd);
    void signal_stop_number(int signum);
    void arm_epoll();
    void collect_io();

    std::unique_ptr<net::io_context> own_;
    net::io_context* ioc_;
    int epoll_fd_ = -1;
    std::unique_ptr<net::posix::stream_descriptor> epoll_watch_;
    bool epoll_armed_ = false, epoll_ready_ = false;
    std::unordered_map<uint64_t, io_watcher> io_;
    std::unordered_map<int, per_fd> fds_;
    std::unordered_map<uint64_t, std::unique_ptr<net::steady_timer>> timers_;
    std::unordered_map<uint64_t, int> signals_;  // id -> signum
    bool watching_signal_pipe_ = false;
    void collect_signals();
    std::mutex async_mutex_;                   // async_send comes from other threads
    std::unordered_map<uint64_t, bool> asyncs_;  // id -> sent since the last batch
    fired fired_;
    uint64_t next_id_ = 0;
    std::unique_ptr<struct event_loop_work> work_;
};

}  // namespace gcorn::hub
