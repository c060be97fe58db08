// What the master knows about the fleet at one instant (issue 12): counters folded from every worker that ever
// ran plus the live ones' slots, worker exits by cause, and one row per live worker. Rendered as Prometheus
// text for --metrics-bind, and as text or JSON for `gcorn ctl status|stats`. Pure functions of a snapshot.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "sys/metrics.hpp"

namespace gcorn::master {

// Why workers exit, as `cause` labels; every one is exposed, zero or not.
inline constexpr const char* exit_causes[] = {"timeout", "crash", "max_requests", "memory", "reload", "scale_down",
                                              "graceful_stop", "quick_stop", "parent_changed", "error", "exit"};

struct worker_row {
    int pid = 0;
    int age = 0;                // Gunicorn's worker.age: its rank among the workers spawned
    double uptime_s = 0;
    uint64_t requests = 0;
    uint32_t in_flight = 0;
    uint32_t connections = 0;
    std::string request;        // the latest request in progress ("GET /path"), "" if none
    double request_age_s = 0;   // how long it has run
    int64_t rss_bytes = -1;     // -1 if unknown
    std::string state;          // booting, idle, busy, retiring, timed out
};

struct fleet {
    sys::metrics::totals totals{};      // monotonic counters, dead and live workers
    std::map<std::string, uint64_t> exits;  // by cause
    uint64_t connections_open = 0, connections_idle = 0, in_flight = 0, greenlets = 0;
    int workers = 0, target = 0, booted = 0;
    long backlog = -1;                  // connections in the listeners' accept queues; -1 if the kernel does not say
    double start_time_s = 0;            // the master's start, Unix time
    std::vector<worker_row> rows;
};

// Prometheus text exposition format 0.0.4.
std::string prometheus_text(const fleet& f);
// `gcorn ctl status`: one line per worker.
std::string status_table(const fleet& f);
// `gcorn ctl stats [--json]`.
std::string stats_text(const fleet& f);
std::string stats_json(const fleet& f);

}  // namespace gcorn::master
