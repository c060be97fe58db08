// The connection loop, written once for every worker class (DESIGN §2): read a head, call the app,
// write the response, keep-alive or close. The only place that composes http + wsgi.
#pragma once
#include <atomic>
#include <chrono>

#include "config/settings.hpp"
#include "http/byte_stream.hpp"
#include "http/head_scan.hpp"
#include "http/request_reader.hpp"
#include "sys/scoreboard.hpp"
#include "wsgi/app.hpp"

namespace gcorn::worker {

struct serve_options {
    http::limits limits;
    std::chrono::milliseconds head_timeout;    // a whole request head must arrive within this (slowloris)
    std::chrono::milliseconds keepalive;       // idle time allowed between requests on one connection
    std::chrono::milliseconds io_timeout;      // one body read or response write
    bool keepalive_allowed;                    // false for sync: Gunicorn's sync worker closes every response
    size_t discard_limit = 1 << 20;            // unread body we skip to keep a connection alive
    bool return_when_idle = false;             // hand idle keep-alive connections back to the caller

    static serve_options from(const config::settings& s, bool keepalive_allowed);
};

// Per-worker state the loop reads and updates.
struct serve_state {
    sys::worker_slot* slot = nullptr;   // the scoreboard: current request, for WORKER TIMEOUT logs
    std::atomic<bool> stopping{false};  // graceful stop: finish this request, then close
    unsigned long requests = 0;
    unsigned long max_requests = 0;     // 0: unlimited
    bool exhausted() const { return max_requests && requests >= max_requests; }
};

enum class after { closed, idle };

// Serves requests on one connection until it closes (after::closed), or, with opt.return_when_idle, until a
// keep-alive connection has nothing buffered (after::idle): the caller then waits for readability on its
// reactor and calls again with fresh = false. `reader` lives as long as the connection. Never throws.
// `*idle` (if given) is true while the loop waits for a request, so a graceful stop can close it at once.
after serve(http::byte_stream& stream, http::request_reader& reader, const wsgi::application& app,
            const wsgi::connection_info& conn, const serve_options& opt, serve_state& state, bool fresh,
            bool* idle = nullptr);

}  // namespace gcorn::worker
