#include "log/log.hpp"

#include "base/ascii.hpp"

#include <cstdio>
#include <ctime>
#include <mutex>
#include <unistd.h>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace gcorn::log {
namespace {

struct state {
    std::string error_path, access_path;
    spdlog::level::level_enum level = spdlog::level::info;
    std::shared_ptr<spdlog::logger> access_logger;
    std::unique_ptr<access_format> format;
    int error_fd = 2;
};
state& st() {
    static state s;
    return s;
}

// Gunicorn prints levels as INFO, WARNING, ...; spdlog's %l is lower-case.
class upper_level final : public spdlog::custom_flag_formatter {
public:
    void format(const spdlog::details::log_msg& m, const std::tm&, spdlog::memory_buf_t& dest) override {
        static constexpr std::string_view names[] = {"TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", ""};
        auto n = names[m.level];
        dest.append(n.data(), n.data() + n.size());
    }
    std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<upper_level>(); }
};

spdlog::sink_ptr make_sink(const std::string& path, bool error_log) {
    if (path == "-") {
        if (error_log) return std::make_shared<spdlog::sinks::stderr_sink_mt>();
        return std::make_shared<spdlog::sinks::stdout_sink_mt>();
    }
    return std::make_shared<spdlog::sinks::basic_file_sink_mt>(path);
}

void build() {
    auto& s = st();
    auto error = std::make_shared<spdlog::logger>("gcorn", make_sink(s.error_path, true));
    auto f = std::make_unique<spdlog::pattern_formatter>();
    f->add_flag<upper_level>('*').set_pattern("[%Y-%m-%d %H:%M:%S %z] [%P] [%*] %v");
    error->set_formatter(std::move(f));
    error->set_level(s.level);
    error->flush_on(spdlog::level::trace);
    spdlog::set_default_logger(error);
    s.error_fd = s.error_path == "-" ? 2 : -1;
    if (!s.access_path.empty()) {
        s.access_logger = std::make_shared<spdlog::logger>("access", make_sink(s.access_path, false));
        s.access_logger->set_pattern("%v");
        s.access_logger->flush_on(spdlog::level::trace);
    } else {
        s.access_logger.reset();
    }
}

void append_request_time(std::string& out, std::chrono::system_clock::time_point t) {
    // [10/Oct/2000:13:55:36 +0000], Apache's common log time.
    std::time_t tt = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    ::localtime_r(&tt, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "[%d/%b/%Y:%H:%M:%S %z]", &tm);
    out += buf;
}

std::string_view header(const header_list* h, std::string_view name) {
    if (h)
        for (auto& [k, v] : *h)
            if (ascii::iequals(k, name)) return v;
    return {};
}

std::string_view or_dash(std::string_view v) { return v.empty() ? "-" : v; }

}  // namespace

void setup(const config::settings& s) {
    auto& ls = st();
    ls.error_path = s.errorlog.empty() ? "-" : s.errorlog;
    ls.access_path = s.accesslog;
    std::string level;
    for (char c : s.loglevel) level += ascii::lower(c);  // Gunicorn accepts any case
    ls.level = spdlog::level::from_str(level == "warning" ? "warn" : level);
    ls.format = std::make_unique<access_format>(s.access_log_format);
    build();
}

void reopen() {
    try {
        build();
    } catch (const std::exception& e) {
        spdlog::error("cannot reopen log files: {}", e.what());
    }
}

int error_log_fd() { return st().error_fd; }

bool access_enabled() { return st().access_logger != nullptr; }

void access(const access_entry& e) {
    auto& s = st();
    if (s.access_logger) s.access_logger->info(s.format->render(e));
}

access_format::access_format(std::string_view fmt) {
    std::string literal;
    for (size_t i = 0; i < fmt.size();) {
        auto close = fmt.find(")s", i);
        if (fmt.compare(i, 2, "%(") != 0 || close == std::string_view::npos) {
            literal += fmt[i++];
            continue;
        }
        if (!literal.empty()) parts_.push_back({std::move(literal), 0}), literal.clear();
        std::string name(fmt.substr(i + 2, close - i - 2));
        char kind = 'a';
        if (name.size() > 3 && name.front() == '{' && name[name.size() - 2] == '}') {
            kind = name.back();
            name = name.substr(1, name.size() - 3);
        }
        parts_.push_back({std::move(name), kind});
        i = close + 2;
    }
    if (!literal.empty()) parts_.push_back({std::move(literal), 0});
}

namespace {

// One of Gunicorn's single-letter atoms (%(h)s ...); unknown ones print "-" as Gunicorn's do.
void append_atom(std::string& out, const std::string& a, const access_entry& e) {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(e.duration).count();
    auto qpos = e.target.find('?');
    auto path = e.target.substr(0, qpos);
    auto query = qpos == std::string_view::npos ? std::string_view{} : e.target.substr(qpos + 1);
    if (a == "h") out += e.remote_addr;
    else if (a == "l") out += "-";
    else if (a == "u") out += or_dash(e.remote_user);
    else if (a == "t") append_request_time(out, e.start);
    else if (a == "r") (((out += e.method) += ' ') += e.target) += ' ', out += e.protocol;
    else if (a == "m") out += e.method;
    else if (a == "U") out += path;
    else if (a == "q") out += query;
    else if (a == "H") out += e.protocol;
    else if (a == "s") out += e.status.substr(0, e.status.find(' '));
    else if (a == "B") out += std::to_string(e.response_length);
    else if (a == "b") out += e.response_length ? std::to_string(e.response_length) : "-";
    else if (a == "f") out += or_dash(header(e.request_headers, "referer"));
    else if (a == "a") out += or_dash(header(e.request_headers, "user-agent"));
    else if (a == "T") out += std::to_string(us / 1000000);
    else if (a == "D") out += std::to_string(us);
    else if (a == "M") out += std::to_string(us / 1000);
    else if (a == "L") {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.6f", double(us) / 1e6);
        out += buf;
    } else if (a == "p") out += "<" + std::to_string(::getpid()) + ">";
    else out += "-";
}

}  // namespace

std::string access_format::render(const access_entry& e) const {
    std::string out;
    for (auto& p : parts_) {
        switch (p.kind) {
            case 0: out += p.text; break;
            case 'i': out += or_dash(header(e.request_headers, p.text)); break;
            case 'o': out += or_dash(header(e.response_headers, p.text)); break;
            case 'e': out += e.environ_lookup ? e.environ_lookup(e.environ_ctx, p.text) : "-"; break;
            default: append_atom(out, p.text, e);
        }
    }
    return out;
}

}  // namespace gcorn::log
