// The access log as JSON (access_log_json, or --access-logformat json): one object per request, one per line,
// Gunicorn's atoms under readable names and with their types. README.md ("Logging") lists the fields.
#include "log/log.hpp"

#include <atomic>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <pthread.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "base/ascii.hpp"
#include "base/uri.hpp"
#include "log/detail.hpp"

namespace gcorn::log {
namespace {

using json = nlohmann::ordered_json;  // fields in the order written below, not sorted

// A client's X-Request-ID is logged trimmed and cut to this many bytes, so that one header cannot make every
// line that carries it arbitrarily long (limit_request_field_size alone allows 8190 bytes).
constexpr size_t max_request_id = 200;

// What a forked worker must not inherit from its parent: the pid, and the request-id generators' seeds (two
// workers drawing the same sequence would log the same ids). A pthread_atfork child handler renews both, so a
// request pays no syscall for either.
struct process_local {
    std::atomic<pid_t> pid{::getpid()};
    std::atomic<unsigned> generation{1};  // bumped by each fork; a thread's generator reseeds when it changes
    process_local() { ::pthread_atfork(nullptr, nullptr, &after_fork); }
    static void after_fork();
};
process_local& process() {
    static process_local p;
    return p;
}
void process_local::after_fork() {
    process().pid = ::getpid();
    ++process().generation;
}

// 16 random bytes as 32 hex digits. One generator per thread (gthread workers log from several), seeded from
// std::random_device once per thread and process; not for secrets, only to tell requests apart.
std::string new_request_id() {
    thread_local struct {
        unsigned generation = 0;
        std::mt19937_64 bits;
    } g;
    if (unsigned now = process().generation; g.generation != now) {
        std::random_device device;
        std::seed_seq seed{device(), device(), device(), device(), device(), device(), device(), device()};
        g.bits.seed(seed);
        g.generation = now;
    }
    char buf[33];
    std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(g.bits()),
                  static_cast<unsigned long long>(g.bits()));
    return std::string(buf, 32);
}

// The client's X-Request-ID (a proxy's, to follow one request through several logs), else a new one.
std::string request_id(const header_list* headers) {
    if (auto* sent = detail::find_header(headers, "x-request-id"))
        if (auto id = ascii::trim(*sent); !id.empty()) return std::string(id.substr(0, max_request_id));
    return new_request_id();
}

// RFC 3339 (ISO 8601) local time with microseconds and the UTC offset, 2026-12-02T13:55:36.123456+01:00: the
// same instant and zone as %(t)s, in a form log tools parse.
std::string iso_time(std::chrono::system_clock::time_point t) {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
    std::time_t seconds = std::time_t(us / 1000000);
    std::tm tm{};
    ::localtime_r(&seconds, &tm);
    long offset = tm.tm_gmtoff / 60;
    char buf[64];
    size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(buf + n, sizeof buf - n, ".%06lld%c%02ld:%02ld", static_cast<long long>(us % 1000000),
                  offset < 0 ? '-' : '+', std::labs(offset) / 60, std::labs(offset) % 60);
    return buf;
}

// "200 OK" -> 200; null if the status does not start with a number.
json status_code(std::string_view status) {
    int code = 0;
    auto [end, ec] = std::from_chars(status.data(), status.data() + status.size(), code);
    return ec == std::errc() ? json(code) : json(nullptr);
}

json header_or_null(const header_list* headers, std::string_view name) {
    auto* v = detail::find_header(headers, name);
    return v ? json(*v) : json(nullptr);
}

json string_or_null(std::string v) { return v.empty() ? json(nullptr) : json(std::move(v)); }

}  // namespace

std::string render_json(const access_entry& e) {
    using std::chrono::duration_cast;
    auto us = duration_cast<std::chrono::microseconds>(e.duration).count();
    auto target = uri::path_and_query(e.target);
    auto qmark = target.find('?');
    std::string method(e.method), protocol(e.protocol);
    json line = {
        {"time", iso_time(e.start)},
        {"remote_addr", std::string(e.remote_addr)},
        {"remote_user", string_or_null(e.remote_user.empty() ? detail::basic_user(e.request_headers)
                                                             : std::string(e.remote_user))},
        {"request_id", request_id(e.request_headers)},
        {"method", method},
        // As %(U)s, percent-decoded; but the whole URL path (%(U)s is PATH_INFO, without SCRIPT_NAME), and
        // decoded from the request itself, so an app that rewrites PATH_INFO does not change it.
        {"path", uri::percent_decode(target.substr(0, qmark))},
        {"query", std::string(qmark == std::string_view::npos ? std::string_view() : target.substr(qmark + 1))},
        {"protocol", protocol},
        {"request_line", method + ' ' + std::string(e.target) + ' ' + protocol},
        {"status", status_code(e.status)},
        {"response_length", e.response_length},
        {"referer", header_or_null(e.request_headers, "referer")},
        {"user_agent", header_or_null(e.request_headers, "user-agent")},
        {"duration_s", double(us) / 1e6},
        {"duration_us", us},
        {"queue_s", e.queue.count() < 0 ? json(nullptr) : json(double(e.queue.count()) / 1e9)},
        {"pid", process().pid.load()},
    };
    // Values are bytes from the client: ensure_ascii off keeps UTF-8 readable, control characters become
    // \u00XX, and a byte that is not UTF-8 becomes U+FFFD (replace), so every line is valid JSON.
    return line.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace gcorn::log
