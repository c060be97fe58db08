#include "worker/serve.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <optional>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "base/ascii.hpp"

#include "http/errors.hpp"
#include "http/request_reader.hpp"
#include "http/response_writer.hpp"
#include "log/log.hpp"
#include "log/statsd.hpp"
#include "worker/tls_stream.hpp"
#include "worker/transport.hpp"

namespace gcorn::worker {
namespace {

using ms = std::chrono::milliseconds;
ms seconds(double s) { return ms(static_cast<long long>(s * 1000)); }
// With `timeout = 0` (no worker timeout) a head or a write still needs some bound, or one client pins a
// connection forever: Gunicorn's default timeout.
constexpr double no_timeout_fallback = 30.0;

void log_access(const wsgi::connection_info& conn, const http::request_head& head, const http::response_writer& w,
                const wsgi::outcome& out, http::clock::duration duration,
                std::chrono::nanoseconds queue, int status) {
    log::statsd::request(duration, status);
    if (!log::access_enabled()) return;
    log::access_entry e;
    e.remote_addr = conn.remote_addr;
    e.method = head.method;
    e.target = head.target;
    e.protocol = head.sent_protocol();
    e.status = w.status();
    e.request_headers = &head.headers;
    e.response_headers_of = [](const void* writer) {
        return &static_cast<const http::response_writer*>(writer)->headers();
    };
    e.response_ctx = &w;
    e.response_length = w.body_bytes();
    // When the request started, on the wall clock: read once the request is over, and only for the log.
    e.start = std::chrono::system_clock::now() - std::chrono::duration_cast<std::chrono::system_clock::duration>(duration);
    e.duration = duration;
    e.queue = queue;
    e.environ_lookup = &wsgi::environ_lookup;
    e.environ_ctx = &out.environ;
    log::access(e);
}

// A refused request gets its status and the connection closes (DESIGN §6: nothing more is read).
void refuse(http::byte_stream& stream, const http::http_error& e, const serve_options& opt) {
    spdlog::debug("Invalid request: {} ({})", e.what(), e.status);
    auto response = http::canned_response(e.status, std::string(e.what()) + "\n");
    std::string_view piece[] = {response};
    try {
        stream.write_all(piece, http::clock::now() + opt.io_timeout);
        stream.linger(http::clock::now() + opt.linger);
    } catch (const http::stream_error&) {
    }
}

// A trusted proxy's `X-Request-Start` (nginx: `t=${msec}`, seconds with a fraction; Heroku and others: integer
// milliseconds or microseconds, with or without `t=`): when the request reached the front end, or nullopt.
std::optional<std::chrono::system_clock::time_point> request_start(const http::request_head& head) {
    for (auto& [name, value] : head.headers) {
        if (!ascii::iequals(name, "X-Request-Start")) continue;
        std::string_view v = value;
        if (v.starts_with("t=")) v.remove_prefix(2);
        double x = 0;
        auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
        if (ec != std::errc{} || end == v.data() || x <= 0) return std::nullopt;
        // Integer digits tell the unit: about 10 for seconds, 13 for milliseconds, 16 for microseconds now.
        size_t digits = size_t(std::find(v.data(), end, '.') - v.data());
        double seconds = digits >= 18 ? x / 1e9 : digits >= 15 ? x / 1e6 : digits >= 12 ? x / 1e3 : x;
        return std::chrono::system_clock::time_point(
            std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::duration<double>(seconds)));
    }
    return std::nullopt;
}

// max_queue_time: 503 with Retry-After, the app not called; the connection closes (the body stays unread).
wsgi::outcome shed_request(http::response_writer& w, serve_state& state) {
    static constexpr std::string_view body = "Service Unavailable: the server is overloaded, retry later\n";
    w.start("503 Service Unavailable", {{"Content-Type", "text/plain"}, {"Retry-After", "1"}});
    w.force_close();
    w.set_length_hint(body.size());
    w.write(body);
    w.finish();
    if (state.slot) state.slot->counters.add(sys::metrics::at::shed);
    return {};
}

// request_timeout: the request's deadline is armed while the app runs, disarmed however it ends; the app may
// move it (environ["gcorn.deadline"](seconds)).
struct deadline_scope {
    deadline_keeper* keeper;
    request_clock& clock;
    std::function<void(double)> setter;
    deadline_scope(deadline_keeper* k, connection& c, const http::request_head& head, http::response_writer& w,
                   int64_t start_ns, std::chrono::nanoseconds timeout)
        : keeper(k), clock(c.clock) {
        if (!keeper) return;
        clock.line = head.method + " " + head.target;
        clock.fd = c.fd;
        clock.plain = dynamic_cast<tls_stream_base*>(c.stream.get()) == nullptr;
        clock.claimed = false;
        w.claim_with(&clock.claimed);
        keeper->arm(clock, start_ns + timeout.count());
        setter = [this](double seconds) {
            if (seconds > 0) keeper->arm(clock, sys::monotonic_ns() + int64_t(seconds * 1e9));
            else keeper->disarm(clock);
        };
        c.info.set_deadline = &setter;
    }
    ~deadline_scope() {
        if (keeper) keeper->disarm(clock);
    }
    deadline_scope(const deadline_scope&) = delete;
    deadline_scope& operator=(const deadline_scope&) = delete;
};

// A request's share of the worker's gauges, released however the request ends.
struct in_flight {
    sys::worker_slot* slot;
    uint64_t ticket = 0;
    in_flight(sys::worker_slot* s, const http::request_head& head, int64_t start_ns) : slot(s) {
        if (!slot) return;
        slot->counters.bump(slot->counters.in_flight, 1u);
        ticket = slot->set_request(head.method, head.target, start_ns);
    }
    ~in_flight() {
        if (!slot) return;
        slot->clear_request(ticket);
        slot->counters.bump(slot->counters.in_flight, uint32_t(-1));
    }
    in_flight(const in_flight&) = delete;
    in_flight& operator=(const in_flight&) = delete;
};

}  // namespace

long serve_state::check_memory() {
    char buf[64];
    ssize_t n = statm_fd < 0 ? -1 : ::pread(statm_fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return -1;
    buf[n] = '\0';
    long size = 0, resident = 0;
    if (std::sscanf(buf, "%ld %ld", &size, &resident) != 2) return -1;
    if (resident > max_rss_pages) over_memory = true;
    return resident * ::sysconf(_SC_PAGESIZE);
}

serve_options serve_options::from(const config::settings& s, bool reactor) {
    serve_options o;
    auto map = s.header_map == "refuse" ? http::underscores::refuse
             : s.header_map == "dangerous" ? http::underscores::dangerous : http::underscores::drop;
    o.limits = {size_t(s.limit_request_line), size_t(s.limit_request_fields), size_t(s.limit_request_field_size), map};
    o.limits.strip_header_spaces = s.strip_header_spaces;
    o.limits.permit_obsolete_folding = s.permit_obsolete_folding;
    o.limits.permit_unconventional_method = s.permit_unconventional_http_method;
    o.limits.permit_unconventional_version = s.permit_unconventional_http_version;
    o.limits.casefold_method = s.casefold_http_method;
    o.forwarder_headers = std::make_shared<const std::vector<std::string>>(s.forwarder_headers);
    o.limits.forwarder_headers = o.forwarder_headers.get();
    // header_timeout, never past `timeout`: a head still arriving when the master's patience runs out would get the
    // worker killed instead of the client refused (0: `timeout` itself, as before header_timeout existed).
    double head = s.header_timeout > 0 ? s.header_timeout : s.timeout > 0 ? s.timeout : no_timeout_fallback;
    o.head_timeout = seconds(s.timeout > 0 ? std::min(head, s.timeout) : head);
    o.keepalive = seconds(s.keepalive);
    o.io_timeout = seconds(s.timeout > 0 ? s.timeout : no_timeout_fallback);
    o.keepalive_allowed = reactor && s.keepalive > 0;
    o.max_queue = std::chrono::nanoseconds(int64_t(s.max_queue_time * 1e9));
    o.request_timeout = std::chrono::nanoseconds(int64_t(s.request_timeout * 1e9));
    o.return_when_idle = reactor;
    return o;
}

namespace {

enum class next { request, idle, close };

// One request: read its head, call the app, write the response, decide what comes next.
next serve_request(connection& c, const wsgi::application& app, const serve_options& opt, serve_state& state) {
    auto& stream = *c.stream;
    // 1. Read the head: a new connection gets the head timeout, an idle keep-alive one `keepalive`.
    auto now = http::coarse_now();
    auto head = c.reader.read_head(now + (c.served_any ? opt.keepalive : opt.head_timeout), now + opt.head_timeout);
    if (!head) return next::close;
    struct recycle_fields {  // last out, after everything that refers to the head
        http::request_head& head;
        ~recycle_fields() { http::recycle(std::move(head.headers)); }
    } recycle_on_return{*head};
    bool reused = std::exchange(c.served_any, true);
    auto start = http::clock::now();
    auto arrived = c.ready_at == http::clock::time_point{} ? start : c.ready_at;
    std::chrono::nanoseconds queue = start - arrived;
    if (c.info.trusted_proxy)
        if (auto front = request_start(*head))
            queue = std::max(std::chrono::nanoseconds(0), std::chrono::system_clock::now() - *front);
    in_flight busy(state.slot, *head, std::chrono::nanoseconds(start.time_since_epoch()).count());  // CLOCK_MONOTONIC
    if (state.label_hub) state.label_hub->set_label(head->method, head->target);

    // 2. Call the app; it writes the response through `writer`. A request that already waited past max_queue_time
    // is shed instead: nobody is likely still waiting for it, and the app's time goes to fresher ones.
    http::response_writer writer(stream, *head, opt.keepalive_allowed && !state.stopping, opt.io_timeout);
    writer.close_when(&state.stopping);
    bool shed = opt.max_queue.count() > 0 && queue > opt.max_queue;
    std::optional<deadline_scope> deadline;
    if (opt.request_timeout.count() > 0 && state.deadlines && !shed)
        deadline.emplace(state.deadlines, c, *head, writer, std::chrono::nanoseconds(start.time_since_epoch()).count(),
                         opt.request_timeout);
    auto out = shed ? shed_request(writer, state) : app.handle(c.info, *head, c.reader, writer);
    if (deadline) {
        c.info.set_deadline = nullptr;
        if (writer.preempted() || out.timed_out) {
            out.aborted = true;
            if (state.slot) state.slot->counters.add(sys::metrics::at::deadline_timeouts);
        }
        deadline.reset();
    }
    auto end = http::clock::now();
    stream.request_done(end - start);
    ++state.requests;
    int status = writer.status_code();
    if (auto* slot = state.slot) {
        slot->requests.store(state.requests, std::memory_order_relaxed);
        auto& m = slot->counters;
        m.request(head->method, status);
        m.observe(sys::metrics::histogram::request, (end - arrived).count());
        m.observe(sys::metrics::histogram::app, (end - start).count());
        m.observe(sys::metrics::histogram::queue, queue.count());
        uint64_t read = c.reader.bytes_read();
        m.add(sys::metrics::at::bytes_in, read - std::exchange(c.bytes_counted, read));
        m.add(sys::metrics::at::bytes_out, writer.body_bytes());
        if (reused) m.add(sys::metrics::at::keepalive_reused);
    }
    log_access(c.info, *head, writer, out, end - start, queue, status);
    c.ready_at = end;  // a pipelined request waits from here
    if (state.max_rss_pages) state.check_memory();

    // 3. Keep-alive only if the response was complete and the unread body can be skipped.
    bool reusable = !out.aborted && writer.keep_alive() && !state.stopping && !state.exhausted();
    if (reusable && c.reader.discard_body(opt.discard_limit, http::coarse_now() + opt.io_timeout)) {
        if (c.reader.has_buffered_bytes() || stream.has_buffered_input() || !opt.return_when_idle) return next::request;
        c.reader.release_buffers();
        return next::idle;  // the driver waits for the next request holding no greenlet or thread
    }
    // Unread input (a body, a pipelined request) would make close() send a reset that can destroy the response
    // still in flight: drain it first (lingering close).
    if (!c.reader.body_complete() || c.reader.has_buffered_bytes() || stream.input_pending())
        stream.linger(http::clock::now() + opt.linger);
    return next::close;
}

}  // namespace

served serve(connection& c, const wsgi::application& app, const transport& t, const serve_options& opt,
             serve_state& state) {
    try {
        // Once: the PROXY header and the TLS handshake, within the head timeout.
        if (!c.prepared && !(c.prepared = t.prepare(c, http::clock::now() + opt.head_timeout))) return served::closed;
        for (bool first = true;; first = false) {
            if (!first && c.reader.has_buffered_bytes()) c.stream->yield();  // fairness to other connections
            if (!first && state.stopping) return served::closed;  // a request that reached us is still answered
            // The last response is out before the app runs again (it may write to gunicorn.socket itself).
            if (c.stream->output_pending()) c.stream->flush_output(http::coarse_now() + opt.io_timeout);
            switch (serve_request(c, app, opt, state)) {
                case next::request: continue;
                case next::idle: return served::idle;
                case next::close: return served::closed;  // the driver's close() sends what output is left first
            }
        }
    } catch (const http::http_error& e) {
        refuse(*c.stream, e, opt);
    } catch (const http::stream_error& e) {
        spdlog::debug("Connection from {} closed: {}", c.info.remote_addr, e.what());
    } catch (const std::exception& e) {
        spdlog::error("Error serving a connection: {}", e.what());
    }
    return served::closed;
}

}  // namespace gcorn::worker
