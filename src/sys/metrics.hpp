// The counters behind gcorn's metrics (issue 12): one block per scoreboard slot, written by its worker with
// relaxed atomics (no locks, no syscalls on the request path), read and folded by the master. Everything the
// master must keep across a worker's death is a monotonic counter in one flat array, so folding a dead worker
// into the master's totals is a loop; gauges (what is open now) live beside it and die with the worker.
#pragma once
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace gcorn::sys::metrics {

// Request method classes, as labels; anything else is "other".
inline constexpr std::array<std::string_view, 8> method_names{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH",
                                                              "OPTIONS", "other"};
// Status classes 1xx..5xx, and "other" for a status outside 100..599.
inline constexpr std::array<std::string_view, 6> status_names{"1xx", "2xx", "3xx", "4xx", "5xx", "other"};

size_t method_class(std::string_view method) noexcept;
size_t status_class(int status) noexcept;

// Upper bounds (seconds) of the duration buckets, shared by every histogram; one more bucket for +Inf.
inline constexpr std::array<double, 15> bucket_bounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                      0.25,   0.5,   1.0,    2.5,   5.0,  10.0,  30.0};
inline constexpr size_t n_buckets = bucket_bounds.size() + 1;
size_t bucket_of(int64_t ns) noexcept;

// A histogram's place in the counter array: n_buckets counts (not cumulative), then the sum in nanoseconds.
enum class histogram : size_t { request = 0, app = 1, queue = 2 };
inline constexpr size_t n_histograms = 3;

// Indexes into the counter array.
namespace at {
inline constexpr size_t requests = 0;  // [method][status]
inline constexpr size_t histograms = requests + method_names.size() * status_names.size();
inline constexpr size_t histogram_size = n_buckets + 1;
inline constexpr size_t bytes_in = histograms + n_histograms * histogram_size;  // request heads and bodies read
inline constexpr size_t bytes_out = bytes_in + 1;                             // response bodies sent
inline constexpr size_t keepalive_reused = bytes_out + 1;                     // requests on a reused connection
inline constexpr size_t connections = keepalive_reused + 1;                   // connections accepted
inline constexpr size_t dropped = connections + 1;      // connections gcorn closed with a request unanswered
inline constexpr size_t blocked_ns = dropped + 1;       // the event loop late by more than blocked_threshold_ns
inline constexpr size_t blocked_episodes = blocked_ns + 1;
inline constexpr size_t shed = blocked_episodes + 1;    // max_queue_time: answered 503 without the app
inline constexpr size_t deadline_timeouts = shed + 1;  // requests that outlived request_timeout
inline constexpr size_t count = deadline_timeouts + 1;
}  // namespace at

// A loop late by more than this counts as blocked (a tick that runs a little late is not).
inline constexpr int64_t blocked_threshold_ns = 20'000'000;

using totals = std::array<uint64_t, at::count>;

// One worker's block in its scoreboard slot.
struct counters {
    std::array<std::atomic<uint64_t>, at::count> c{};
    // Gauges: what the worker has now (summed over live workers only).
    std::atomic<uint32_t> connections_open{0};
    std::atomic<uint32_t> connections_idle{0};  // keep-alive connections waiting for their next request
    std::atomic<uint32_t> in_flight{0};         // requests read and not yet answered
    std::atomic<uint32_t> greenlets{0};         // async: greenlets alive in the hub, sampled on the heartbeat

    std::atomic<bool> shared_writers{false};  // gthread: several threads count at once

    // One writer (sync, async) needs no locked instruction: a relaxed load and store (the master only reads).
    template <class T>
    T bump(std::atomic<T>& a, T n) noexcept {
        if (shared_writers.load(std::memory_order_relaxed)) return a.fetch_add(n, std::memory_order_relaxed) + n;
        T v = a.load(std::memory_order_relaxed) + n;
        a.store(v, std::memory_order_relaxed);
        return v;
    }
    void add(size_t i, uint64_t n = 1) noexcept { bump(c[i], n); }
    void observe(histogram h, int64_t ns) noexcept {
        size_t base = at::histograms + size_t(h) * at::histogram_size;
        add(base + bucket_of(ns));
        add(base + n_buckets, uint64_t(ns < 0 ? 0 : ns));
    }
    void request(std::string_view method, int status) noexcept {
        add(at::requests + method_class(method) * status_names.size() + status_class(status));
    }
    void fold_into(totals& t) const noexcept {
        for (size_t i = 0; i < at::count; ++i) t[i] += c[i].load(std::memory_order_relaxed);
    }
    void reset() noexcept {
        for (auto& x : c) x.store(0, std::memory_order_relaxed);
        connections_open = connections_idle = in_flight = greenlets = 0;
        shared_writers = false;
    }
};

}  // namespace gcorn::sys::metrics
