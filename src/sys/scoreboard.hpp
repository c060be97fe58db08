// The scoreboard (DESIGN §1): one shared anonymous mapping with a slot per worker, written by the worker
// with plain atomics and read by the master for timeouts and statistics. No syscalls per heartbeat.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <sys/types.h>

namespace gcorn::sys {

int64_t monotonic_ns();

struct alignas(64) worker_slot {
    std::atomic<pid_t> pid{0};
    std::atomic<int64_t> heartbeat_ns{0};   // monotonic_ns() of the last sign of life
    std::atomic<uint64_t> requests{0};
    std::atomic<uint32_t> connections{0};
    std::atomic<uint32_t> generation{0};

    void beat() noexcept { heartbeat_ns.store(monotonic_ns(), std::memory_order_relaxed); }
};

class scoreboard {
public:
    explicit scoreboard(size_t slots);  // throws std::system_error
    ~scoreboard();
    scoreboard(const scoreboard&) = delete;
    scoreboard& operator=(const scoreboard&) = delete;

    size_t size() const noexcept { return n_; }
    worker_slot& operator[](size_t i) noexcept { return slots_[i]; }
    worker_slot* find_free() noexcept;  // a slot whose pid is 0, or nullptr

private:
    worker_slot* slots_;
    size_t n_;
};

}  // namespace gcorn::sys
