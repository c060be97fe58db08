// Logging: the error log (spdlog, Gunicorn's line format) and the access log with Gunicorn's atoms.
// Knows the settings; knows nothing of HTTP parsing, sockets or Python.
#pragma once
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "config/settings.hpp"

namespace gcorn::log {

// Sets up the default logger as the error log (and the access log, if configured). Throws on a bad file.
void setup(const config::settings& s);

// Reopens log files (USR1, logrotate). Never throws; a failure is logged to the old sink.
void reopen();

// The file descriptor the error log writes to, or -1 (for capture_output and wsgi.errors).
int error_log_fd();

using header_list = std::vector<std::pair<std::string, std::string>>;

// What one request leaves for the access log. Plain values, filled by the worker.
struct access_entry {
    std::string_view remote_addr, method, target, protocol, status;  // status: "200 OK"
    const header_list* request_headers = nullptr;
    // The response's fields, read on demand (%({name}o)s, the atoms a custom logger gets): the writer reads them back
    // from the head it sent, which a format that names none should not pay for. Null if there are none.
    const header_list* (*response_headers_of)(const void* ctx) = nullptr;
    const void* response_ctx = nullptr;
    const header_list* response_headers() const {
        return response_headers_of ? response_headers_of(response_ctx) : nullptr;
    }
    unsigned long long response_length = 0;
    std::chrono::system_clock::time_point start;
    std::chrono::steady_clock::duration duration{};
    // Queue time: from accept (or a trusted proxy's X-Request-Start) to the app being called; negative if unknown.
    std::chrono::nanoseconds queue{-1};
    std::string_view remote_user;
    // %({var}e)s: looks a variable up in the request's environ.
    std::string (*environ_lookup)(const void* ctx, std::string_view key) = nullptr;
    const void* environ_ctx = nullptr;
};

// A compiled --access-logformat: Gunicorn's %(atom)s text, or the format "json": one JSON object per request
// (the fields are listed in README.md, "Logging").
class access_format {
public:
    explicit access_format(std::string_view fmt);
    // access_log_format, or JSON when access_log_json is set (a custom format is then ignored).
    static access_format of(const config::settings& s);
    bool json() const noexcept { return json_; }
    std::string render(const access_entry& e) const;

private:
    struct part {
        std::string text;  // literal, or the atom name / {key} for lookups
        char kind;         // 0 literal, 'a' atom, 'i' request header, 'o' response header, 'e' environ
    };
    std::vector<part> parts_;
    bool json_ = false;
};

// One request as a JSON object on one line (no newline), valid JSON whatever bytes the client sent.
std::string render_json(const access_entry& e);

// True when an access log is configured (check before building an entry).
bool access_enabled();
void access(const access_entry& e);

// Batching, for a worker whose requests end on one thread between reactor waits (async): access lines to a
// regular file are kept in memory, whole, until flush_access() (which the worker calls before its reactor
// waits, and every few dozen handlers while it is busy) or until 64 KiB are pending, then written with one
// write(2). Without it (the default), each line is written as it comes. Never throws.
void batch_access(bool on);
void flush_access();

// Gunicorn's atoms for one request, as its access logger passes them to Python's logging (name -> value):
// the single letters, plus "{name}i" / "{name}o" for every request / response header (lower-case names) and
// "{key}e" for each environ key `format` refers to.
std::vector<std::pair<std::string, std::string>> atoms(const access_entry& e, std::string_view format);

// Lines handed to another logging system instead of spdlog's sinks: Python's logging, when logconfig,
// logconfig_dict, logconfig_json or syslog is set (installed by hooks/, which owns Python; the log layer
// knows none). Each callback is called with the line's level (spdlog's) and must not throw.
struct external {
    std::function<void(spdlog::level::level_enum, std::string_view message)> error;
    std::function<void(const access_entry&)> access;  // null: no access log
    std::function<void()> reopen;                     // USR1
    spdlog::level::level_enum level;                  // the lowest level the other side wants
};
// Installs it (or removes it, with an empty `error`) for this process and its future children.
void forward_to(external e);

// Gunicorn's rule: error and access lines go through Python's logging when any of these is set.
bool wants_python_logging(const config::settings& s);
// ... and access lines are logged at all (accesslog, a logging configuration, or syslog not told otherwise).
bool wants_access_log(const config::settings& s);

}  // namespace gcorn::log
