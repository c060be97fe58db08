#include "config/validators.hpp"

#include "base/ascii.hpp"
#include "config/address_list.hpp"
#include "config/tables.hpp"
#include "gcorn_build_config.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

namespace gcorn::config::check {
namespace {
[[noreturn]] void fail(const std::string& why) { throw std::invalid_argument(why); }

template <size_t N>
void one_of(const std::string& v, const std::array<const char*, N>& allowed) {
    if (std::find_if(allowed.begin(), allowed.end(), [&](const char* a) { return v == a; }) != allowed.end())
        return;
    std::string list;
    for (auto* a : allowed) list += std::string(list.empty() ? "" : ", ") + a;
    fail("'" + v + "' is not one of " + list);
}
}  // namespace

void positive(int v) { if (v < 1) fail("must be at least 1, not " + std::to_string(v)); }
void non_negative(int v) { if (v < 0) fail("must not be negative"); }
void non_negative(double v) { if (!(v >= 0)) fail("must not be negative"); }

void bind_addresses(const std::vector<std::string>& v) {
    if (v.empty()) fail("needs at least one address");
    for (auto& a : v)
        if (a.empty()) fail("an address is empty");
}

void worker_class(const std::string& v) {
    if (find_worker_class(v)) return;
    std::string list;
    for (auto& row : worker_classes) list += std::string(list.empty() ? "" : ", ") + std::string(row.name);
    fail("'" + v + "' is not one of " + list);
}

// Above the maximum (8190 bytes, 32768 fields) a limit is clamped to it where it is applied, as Gunicorn does.
void limit_line(int v) {
    if (v < 0) fail("must not be negative");
}

void limit_fields(int v) {
    if (v < 0) fail("must not be negative");
}

void directory(const std::string& v) {
    struct stat st{};
    if (!v.empty() && (::stat(v.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))) fail("'" + v + "' is not a directory");
}

void virtualenv(const std::string& v) {
    if (v.empty()) return;
    directory(v);
    std::ifstream cfg(v + "/pyvenv.cfg");
    if (!cfg) fail("'" + v + "' is not a virtualenv (no pyvenv.cfg)");
    // "version = 3.11.2" (venv) or "version_info = 3.11.2.final.0" (virtualenv): compare major.minor.
    for (std::string line; std::getline(cfg, line);) {
        auto eq = line.find('=');
        if (eq == std::string::npos || !line.starts_with("version")) continue;
        auto version = line.substr(line.find_first_not_of(' ', eq + 1));
        auto minor_end = version.find('.', version.find('.') + 1);
        auto made_from = version.substr(0, minor_end);
        if (made_from == GCORN_PYTHON_VERSION) return;
        fail("'" + v + "' was made from Python " + made_from + ", but gcorn runs Python " GCORN_PYTHON_VERSION
             " (use a virtualenv made from " GCORN_PYTHON_EXECUTABLE ", or build gcorn with -Dpython=...)");
    }
    fail("'" + v + "/pyvenv.cfg' names no Python version");
}

void key_value(const std::vector<std::string>& v) {
    for (auto& kv : v)
        if (kv.find('=') == std::string::npos || kv.front() == '=') fail("'" + kv + "' is not KEY=VALUE");
}

void hook_specs(const std::vector<std::string>& v) {
    for (auto& h : v) {
        auto eq = h.find('=');
        if (eq == std::string::npos || h.find(':', eq) == std::string::npos)
            fail("'" + h + "' is not NAME=MODULE:FUNCTION");
        if (!find_hook(h.substr(0, eq))) fail("'" + h.substr(0, eq) + "' is not a server hook");
    }
}

void ip_networks(const std::vector<std::string>& v) { (void)address_list(v); }  // throws naming the bad entry

void readable_file(const std::string& v) {
    if (!v.empty() && ::access(v.c_str(), R_OK) != 0) fail("cannot read '" + v + "'");
}

void readable_paste(const std::string& v) { readable_file(v.substr(0, v.find('#'))); }

void cert_reqs(int v) {
    if (v < 0 || v > 2) fail("must be 0 (none), 1 (optional) or 2 (required)");
}

void ssl_version(const std::string& v) {
    one_of(v, std::array{"TLS", "TLS_SERVER", "SSLv23", "TLSv1", "TLSv1_1", "TLSv1_2", "TLSv1_3"});
}

int parse_umask(const std::string& v) {
    std::string digits = v;
    int base = 10;
    if (digits.rfind("0o", 0) == 0 || digits.rfind("0O", 0) == 0) digits = digits.substr(2), base = 8;
    else if (digits.size() > 1 && digits[0] == '0') base = 8;
    char* end = nullptr;
    errno = 0;
    long n = std::strtol(digits.c_str(), &end, base);
    if (digits.empty() || *end != '\0' || errno != 0 || n < 0 || n > 0777)
        fail("'" + v + "' is not a umask (an octal number up to 0o777)");
    return static_cast<int>(n);
}

void umask(const std::string& v) { parse_umask(v); }

void access_format(const std::string& v) {
    // Every "%(" must close with ")s" (Gunicorn's atoms are %-format mapping keys).
    for (size_t at = v.find("%("); at != std::string::npos; at = v.find("%(", at + 2)) {
        auto close = v.find(')', at);
        if (close == std::string::npos || close + 1 >= v.size() || v[close + 1] != 's')
            fail("atom at offset " + std::to_string(at) + " does not end in ')s'");
    }
}

void statsd_address(const std::string& v) {
    if (v.empty() || v.starts_with("unix:")) return;
    auto colon = v.rfind(':');
    auto port = colon == std::string::npos ? std::string() : v.substr(colon + 1);
    if (colon == 0 || port.empty() || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
        fail("'" + v + "' is not HOST:PORT or unix://PATH");
}

void proxy_protocol(const std::string& v) {
    one_of(v, std::array{"off", "v1", "v2", "auto", "true", "false"});
}

void syslog_address(const std::string& v) {
    if (!v.starts_with("udp://") && !v.starts_with("tcp://") && !v.starts_with("unix://"))
        fail("must be udp://HOST:PORT, tcp://HOST:PORT or unix://PATH, not '" + v + "'");
    if (v.starts_with("unix://")) return;
    auto rest = v.substr(6);
    auto colon = rest.rfind(':');
    if (colon != std::string::npos && rest.find(']', colon) == std::string::npos) {
        auto port = rest.substr(colon + 1);
        if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos)
            fail("'" + port + "' is not a valid port number");
    }
}

void syslog_facility(const std::string& v) {
    std::string lower;
    for (char c : v) lower += ascii::lower(c);
    one_of(lower, std::array{"auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news", "security",
                             "syslog", "user", "uucp", "local0", "local1", "local2", "local3", "local4", "local5",
                             "local6", "local7"});
}

void reload_engine(const std::string& v) { one_of(v, std::array{"auto", "poll", "inotify"}); }

void header_map(const std::string& v) { one_of(v, std::array{"drop", "refuse", "dangerous"}); }

void log_level(const std::string& v) {  // any case, as Gunicorn (log::setup lower-cases it)
    std::string lower;
    for (char c : v) lower += ascii::lower(c);
    one_of(lower, std::array{"debug", "info", "warning", "error", "critical"});
}

}  // namespace gcorn::config::check
