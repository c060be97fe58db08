// The connection routine, written once for every worker class (DESIGN §2): before the first request the PROXY
// header and TLS handshake, then read a head, call the app, write the response, keep-alive or close. The only
// place that composes http + wsgi. Knows nothing of how its waits happen (the stream's waiter does).
#pragma once
#include <atomic>
#include <chrono>
#include <memory>

#include "config/settings.hpp"
#include "http/byte_stream.hpp"
#include "http/head_scan.hpp"
#include "http/request_reader.hpp"
#include "hub/hub.hpp"
#include "sys/scoreboard.hpp"
#include "worker/deadlines.hpp"
#include "wsgi/app.hpp"

namespace gcorn::worker {

class transport;

struct serve_options {
    http::limits limits;
    std::chrono::milliseconds head_timeout;    // header_timeout: a whole request head must arrive within this (slowloris)
    std::chrono::milliseconds keepalive;       // idle time allowed between requests on one connection
    std::chrono::milliseconds io_timeout;      // one body read or response write
    bool keepalive_allowed;                    // false for sync: Gunicorn's sync worker closes every response
    bool return_when_idle;                     // hand idle keep-alive connections back to the driver's reactor
    // Unread request body skipped to keep a connection alive; past this, closing is cheaper than reading on.
    size_t discard_limit = 1 << 20;
    // How long a lingering close drains what the client still sends before the socket is closed.
    std::chrono::milliseconds linger = std::chrono::seconds(1);

    std::shared_ptr<const std::vector<std::string>> forwarder_headers;  // what limits.forwarder_headers points to
    std::chrono::nanoseconds max_queue{0};     // max_queue_time: older requests get 503 without the app; 0: off
    std::chrono::nanoseconds request_timeout{0};  // per-request deadline from the app's call; 0: off

    // `reactor`: the driver parks idle keep-alive connections (gthread, async); sync closes every response.
    static serve_options from(const config::settings& s, bool reactor);
};

// Per-worker state the loop reads and updates.
struct serve_state {
    sys::worker_slot* slot = nullptr;   // the scoreboard: requests served, the current request (WORKER TIMEOUT)
    deadline_keeper* deadlines = nullptr;  // request_timeout: how the class enforces a request's deadline
    hub::hub* label_hub = nullptr;      // async with block_warning: each request labels its greenlet for the watchdog
    std::atomic<bool> stopping{false};  // graceful stop: finish this request, then close
    unsigned long requests = 0;
    unsigned long max_requests = 0;     // 0: unlimited
    long max_rss_pages = 0;             // max_worker_memory in pages; 0: unlimited
    int statm_fd = -1;                  // /proc/self/statm, open while max_worker_memory is set
    bool over_memory = false;           // RSS passed max_worker_memory: finish and be replaced
    bool exhausted() const { return (max_requests && requests >= max_requests) || over_memory; }
    // max_worker_memory: reads the RSS (one pread) and sets over_memory past the limit; returns the RSS in bytes.
    long check_memory();
};

// One accepted connection as serve() sees it, for as long as it lives (the driver owns the socket).
struct connection {
    connection(int socket_fd, std::unique_ptr<http::byte_stream> s, wsgi::connection_info i, const serve_options& opt)
        : fd(socket_fd), stream(std::move(s)), reader(*stream, opt.limits, opt.io_timeout), info(std::move(i)) {
        reader.trust_forwarders(info.trusted_proxy);
    }
    int fd;
    std::unique_ptr<http::byte_stream> stream;  // plain or TLS
    http::request_reader reader;
    wsgi::connection_info info;
    bool prepared = false;                      // its PROXY header and TLS handshake are behind it
    bool served_any = false;                    // a request was read: the next head waits `keepalive`, not the head timeout
    http::clock::time_point ready_at{};         // accepted, or readable after an idle wait: where queue time starts
    uint64_t bytes_counted = 0;                 // reader.bytes_read() already in the metrics
    request_clock clock;                        // request_timeout: the current request's deadline
};

// What serve() did with the connection.
enum class served {
    closed,  // over: the driver closes the socket
    idle,    // keep-alive with nothing buffered (only with opt.return_when_idle): the driver waits for readability
};

// Serves requests on `c` until it closes or goes idle; called again for the same connection after an idle wait.
// Never throws: the client's errors end the connection quietly, anything else is logged once here.
served serve(connection& c, const wsgi::application& app, const transport& t, const serve_options& opt,
             serve_state& state);

}  // namespace gcorn::worker
