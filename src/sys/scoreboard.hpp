// The scoreboard (DESIGN §1): one shared anonymous mapping with a slot per worker, written by the worker
// with plain atomics and read by the master for timeouts and statistics. No syscalls per heartbeat.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

#include "sys/metrics.hpp"

namespace gcorn::sys {

int64_t monotonic_ns();

struct alignas(64) worker_slot {
    std::atomic<pid_t> pid{0};
    std::atomic<int64_t> heartbeat_ns{0};   // monotonic_ns() of the last sign of life
    std::atomic<uint64_t> requests{0};
    std::atomic<uint32_t> generation{0};
    std::atomic<bool> booted{false};        // the app loaded: a death after this is not a boot failure
    std::atomic<uint8_t> exit_reason{0};    // why the worker is leaving on its own (below), 0 if it is not
    std::atomic<uint32_t> request_len{0};
    std::atomic<uint64_t> request_seq{0};   // which request `request` describes
    std::atomic<int64_t> request_start_ns{0};
    char request[200]{};                    // the request being served ("GET /path"), for WORKER TIMEOUT and status
    metrics::counters counters;

    // What a worker sets before leaving on its own, so the master counts the exit by cause.
    enum reason : uint8_t { none = 0, max_requests = 1, memory = 2, parent_changed = 3 };

    void beat() noexcept { heartbeat_ns.store(monotonic_ns(), std::memory_order_relaxed); }
    // The latest request started (gthread and async run several: the latest is shown). Best effort: the master
    // may read a torn value, which only garbles one line. Returns a ticket for clear_request.
    uint64_t set_request(std::string_view method, std::string_view target, int64_t start_ns) noexcept {
        uint64_t seq = counters.bump(request_seq, uint64_t(1));
        size_t n = std::min(method.size(), sizeof request - 1);
        std::memcpy(request, method.data(), n);
        if (n < sizeof request - 1) request[n++] = ' ';
        size_t t = std::min(target.size(), sizeof request - n);
        std::memcpy(request + n, target.data(), t);
        request_start_ns.store(start_ns, std::memory_order_relaxed);
        request_len.store(uint32_t(n + t), std::memory_order_release);
        return seq;
    }
    // Clears it unless a later request has replaced it.
    void clear_request(uint64_t seq) noexcept {
        if (request_seq.load(std::memory_order_relaxed) == seq) request_len.store(0, std::memory_order_release);
    }
    void clear_request() noexcept { request_len.store(0, std::memory_order_release); }
    // From another thread of the worker (the hub watchdog): the request that is actually holding it up.
    void set_request_text(std::string_view text) noexcept {
        size_t n = std::min(text.size(), sizeof request);
        std::memcpy(request, text.data(), n);
        request_len.store(uint32_t(n), std::memory_order_release);
    }
    std::string request_text() const {
        return std::string(request, std::min<size_t>(request_len.load(std::memory_order_acquire), sizeof request));
    }
};

// Slots live in shared blocks mapped before the forks that use them. When every slot is taken (HUP's new
// workers while the old ones finish, TTIN), another block is mapped: workers forked from then on inherit it,
// and a worker's slot never moves, so nothing caps `workers`.
class scoreboard {
public:
    // Slots beyond `workers` in the first block, for TTIN and HUP's overlap without mapping another block.
    static constexpr size_t spare_slots = 8;

    explicit scoreboard(size_t first_block);  // throws std::system_error
    ~scoreboard();
    scoreboard(const scoreboard&) = delete;
    scoreboard& operator=(const scoreboard&) = delete;

    // A slot whose pid is 0, mapping another block if none is. Throws std::system_error if mmap fails.
    worker_slot& take_free();
    size_t capacity() const noexcept;

private:
    struct block {
        worker_slot* slots;
        size_t n;
    };
    void map_block(size_t n);
    std::vector<block> blocks_;
};

}  // namespace gcorn::sys
