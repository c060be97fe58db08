// The hub-blocking watchdog (issue 13, --block-warning): a thread of the async worker that notices when the hub
// has not turned over for longer than the threshold, because a greenlet runs without yielding (a CPU loop, a C
// call that blocks), and logs once per episode the request that greenlet serves and its Python stack. The
// master's WORKER TIMEOUT, if the block lasts past `timeout`, names the same request.
#pragma once
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "hub/hub.hpp"
#include "sys/scoreboard.hpp"

namespace gcorn::worker {

class hub_watchdog {
public:
    // PRECONDITION: on the hub's (main) thread, interpreter running.
    hub_watchdog(const hub::hub& h, sys::worker_slot& slot, std::chrono::milliseconds threshold);
    ~hub_watchdog();  // releases the GIL while the thread stops, if held
    hub_watchdog(const hub_watchdog&) = delete;
    hub_watchdog& operator=(const hub_watchdog&) = delete;

private:
    void watch();
    void report(uint64_t token, uint64_t switches, int64_t blocked_ns);

    const hub::hub& hub_;
    sys::worker_slot& slot_;
    std::chrono::milliseconds threshold_;
    unsigned long hub_thread_;  // Python's ident of the hub's thread: the running greenlet's frames are its frames
    std::mutex m_;
    std::condition_variable wake_;
    bool done_ = false;
    std::thread thread_;
};

}  // namespace gcorn::worker
