#include "worker/serve.hpp"

#include <spdlog/spdlog.h>

#include "http/errors.hpp"
#include "http/request_reader.hpp"
#include "http/response_writer.hpp"
#include "log/log.hpp"

namespace gcorn::worker {
namespace {

using ms = std::chrono::milliseconds;
ms seconds(double s) { return ms(static_cast<long long>(s * 1000)); }

void log_access(const wsgi::connection_info& conn, const http::request_head& head, const http::response_writer& w,
                const wsgi::outcome& out, std::chrono::system_clock::time_point start_wall, http::clock::time_point start) {
    if (!log::access_enabled()) return;
    log::access_entry e;
    e.remote_addr = conn.remote_addr;
    e.method = head.method;
    e.target = head.target;
    e.protocol = head.protocol();
    e.status = w.status();
    e.request_headers = &head.headers;
    e.response_headers = &w.headers();
    e.response_length = w.body_bytes();
    e.start = start_wall;
    e.duration = http::clock::now() - start;
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
        stream.linger(http::clock::now() + std::chrono::seconds(1));
    } catch (const http::stream_error&) {
    }
}

}  // namespace

serve_options serve_options::from(const config::settings& s, bool keepalive_allowed) {
    serve_options o;
    o.limits = {size_t(s.limit_request_line), size_t(s.limit_request_fields), size_t(s.limit_request_field_size)};
    o.head_timeout = seconds(s.timeout > 0 ? s.timeout : 30);
    o.keepalive = seconds(s.keepalive);
    o.io_timeout = seconds(s.timeout > 0 ? s.timeout : 30);
    o.keepalive_allowed = keepalive_allowed && s.keepalive > 0;
    return o;
}

after serve(http::byte_stream& stream, http::request_reader& reader, const wsgi::application& app,
            const wsgi::connection_info& conn, const serve_options& opt, serve_state& state, bool fresh, bool* idle) {
    bool unused = false;
    if (!idle) idle = &unused;
    try {
        for (bool first = true;; first = false) {
            // 1. Read the head: a new connection gets the head timeout, an idle keep-alive one `keepalive`.
            if (!first && reader.has_buffered_bytes()) stream.yield();  // fairness to other connections
            if (!first && state.stopping) return after::closed;  // a request that reached us is still answered
            auto now = http::clock::now();
            *idle = true;
            auto head = reader.read_head(now + (first && fresh ? opt.head_timeout : opt.keepalive), now + opt.head_timeout);
            *idle = false;
            if (!head) return after::closed;
            if (state.slot) state.slot->set_request(head->method, head->target);
            auto start_wall = std::chrono::system_clock::now();
            auto start = http::clock::now();

            // 2. Call the app; it writes the response through `writer`.
            http::response_writer writer(stream, *head, opt.keepalive_allowed && !state.stopping, opt.io_timeout);
            writer.close_when(&state.stopping);
            auto out = app.handle(conn, *head, reader, writer);
            ++state.requests;
            if (state.slot) state.slot->clear_request();
            log_access(conn, *head, writer, out, start_wall, start);

            // 3. Keep-alive only if the response was complete and the unread body can be skipped.
            bool reusable = !out.aborted && writer.keep_alive() && !state.stopping && !state.exhausted();
            if (reusable && reader.discard_body(opt.discard_limit, http::clock::now() + opt.io_timeout)) {
                if (reader.has_buffered_bytes() || !opt.return_when_idle) continue;
                reader.release_buffers();
                return after::idle;  // the caller waits for the next request without holding a greenlet/thread
            }
            // Unread input (a body, a pipelined request) would make close() send a reset that can destroy the
            // response still in flight: drain it first (lingering close).
            if (!reader.body_complete() || reader.has_buffered_bytes() || stream.input_pending())
                stream.linger(http::clock::now() + std::chrono::seconds(1));
            return after::closed;
        }
    } catch (const http::http_error& e) {
        refuse(stream, e, opt);
    } catch (const http::stream_error& e) {
        spdlog::debug("Connection closed: {}", e.what());
    } catch (const std::exception& e) {
        spdlog::error("Error serving a connection: {}", e.what());
    }
    return after::closed;
}

}  // namespace gcorn::worker
