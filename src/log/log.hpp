// Logging: the error log (spdlog, Gunicorn's line format) and the access log with Gunicorn's atoms.
// Knows the settings; knows nothing of HTTP parsing, sockets or Python.
#pragma once
#include <chrono>
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
    const header_list* response_headers = nullptr;
    unsigned long long response_length = 0;
    std::chrono::system_clock::time_point start;
    std::chrono::steady_clock::duration duration{};
    std::string_view remote_user;
    // %({var}e)s: looks a variable up in the request's environ.
    std::string (*environ_lookup)(const void* ctx, std::string_view key) = nullptr;
    const void* environ_ctx = nullptr;
};

// A compiled --access-logformat.
class access_format {
public:
    explicit access_format(std::string_view fmt);
    std::string render(const access_entry& e) const;

private:
    struct part {
        std::string text;  // literal, or the atom name / {key} for lookups
        char kind;         // 0 literal, 'a' atom, 'i' request header, 'o' response header, 'e' environ
    };
    std::vector<part> parts_;
};

// True when an access log is configured (check before building an entry).
bool access_enabled();
void access(const access_entry& e);

}  // namespace gcorn::log
