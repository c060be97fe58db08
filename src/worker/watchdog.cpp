#include "worker/watchdog.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "py/gil.hpp"
#include "py/object.hpp"

namespace gcorn::worker {

hub_watchdog::hub_watchdog(const hub::hub& h, sys::worker_slot& slot, std::chrono::milliseconds threshold)
    : hub_(h), slot_(slot), threshold_(threshold), hub_thread_(py::thread_ident()) {
    py::import("gcorn._inspect");  // now, with the GIL, not when it is scarce
    thread_ = std::thread([this] { watch(); });
}

hub_watchdog::~hub_watchdog() {
    {
        std::lock_guard lock(m_);
        done_ = true;
    }
    wake_.notify_all();
    py::join_without_gil(thread_);  // it may be waiting for the GIL to take a stack
}

// Samples the hub's pulse a few times per threshold: the same greenlet still running after as many switches as
// before, for longer than the threshold, is one episode, reported once.
void hub_watchdog::watch() {
    auto period = std::max<std::chrono::milliseconds>(std::chrono::milliseconds(5), threshold_ / 4);
    uint64_t last_switches = ~0ull, reported = ~0ull;
    int64_t since = 0;
    std::unique_lock lock(m_);
    while (!wake_.wait_for(lock, period, [this] { return done_; })) {
        auto& pulse = hub_.heartbeat();
        uint64_t switches = pulse.switches.load(std::memory_order_relaxed);
        uint64_t token = pulse.running_token.load(std::memory_order_relaxed);
        int64_t now = sys::monotonic_ns();
        if (token == 0 || switches != last_switches) {
            last_switches = switches;
            since = now;
            continue;
        }
        if (reported != switches && now - since >= threshold_.count() * 1'000'000) {
            reported = switches;
            lock.unlock();
            report(token, switches, now - since);
            lock.lock();
        }
    }
}

void hub_watchdog::report(uint64_t token, uint64_t switches, int64_t blocked_ns) {
    auto request = hub_.label_of(token);
    if (!request.empty()) slot_.set_request_text(request);  // what WORKER TIMEOUT names, if it comes to that
    std::string stack;
    {
        // A greenlet blocked in a C call that holds the GIL keeps it until it returns: then the stack is gone.
        py::gil_acquire gil;
        if (hub_.heartbeat().switches.load(std::memory_order_relaxed) == switches) {
            try {
                stack = py::str_of(py::import("gcorn._inspect").attr("thread_stack")({py::integer(long(hub_thread_))}));
            } catch (const py::python_error&) {
            }
        }
    }
    double seconds = double(blocked_ns) / 1e9;
    std::string by = request.empty() ? "" : " by " + request;
    if (stack.empty())
        spdlog::warn("The event loop was blocked for at least {:.3f} s{} (it went on before its stack could be taken)",
                     seconds, by);
    else
        spdlog::warn("The event loop has been blocked for {:.3f} s{}: a greenlet runs without yielding, at:\n{}",
                     seconds, by, stack);
}

}  // namespace gcorn::worker
