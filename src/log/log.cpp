#include "log/log.hpp"

#include "base/ascii.hpp"
#include "log/detail.hpp"
#include "log/statsd.hpp"

#include <spdlog/sinks/base_sink.h>

#include <atomic>
#include <charconv>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <fcntl.h>
#include <mutex>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/pattern_formatter.h>
#include <spdlog/details/os.h>
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
    external forward;  // forward_to
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

// With statsd: gunicorn.log.{warning,error,critical} counted per error-log line, as Gunicorn's Statsd logger.
class statsd_counter final : public spdlog::sinks::base_sink<std::mutex> {
protected:
    void sink_it_(const spdlog::details::log_msg& m) override {
        if (m.level == spdlog::level::warn) statsd::increment("gunicorn.log.warning");
        else if (m.level == spdlog::level::err) statsd::increment("gunicorn.log.error");
        else if (m.level == spdlog::level::critical) statsd::increment("gunicorn.log.critical");
    }
    void flush_() override {}
};

// Gunicorn's error log time zone is strftime's %z (+0000); spdlog's %z prints +00:00.
class utc_offset final : public spdlog::custom_flag_formatter {
public:
    void format(const spdlog::details::log_msg&, const std::tm& tm, spdlog::memory_buf_t& dest) override {
        char buf[8];
        size_t n = std::strftime(buf, sizeof buf, "%z", &tm);
        dest.append(buf, buf + n);
    }
    std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<utc_offset>(); }
};

// RFC 7617 Basic credentials, base64-decoded. Written here because spdlog and the standard library have no
// base64 and the log layer links nothing else; 24 lines.
std::string decode_base64(std::string_view in) {
    auto value = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        return c == '+' ? 62 : c == '/' ? 63 : -1;
    };
    std::string out;
    unsigned bits = 0;
    int count = 0;
    for (char c : in) {
        if (c == '=') break;
        int v = value(c);
        if (v < 0) return {};
        bits = (bits << 6) | unsigned(v);
        if ((count += 6) >= 8) out += char((bits >> (count -= 8)) & 0xFF);
    }
    return out;
}

// Error-log lines to another logging system (forward_to), unformatted: the other side formats them. No lock of
// its own: the other side serializes (Python's GIL); a mutex here, taken before the GIL, could deadlock.
class forward_sink final : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
protected:
    void sink_it_(const spdlog::details::log_msg& m) override {
        auto& f = st().forward;
        if (f.error) f.error(m.level, std::string_view(m.payload.data(), m.payload.size()));
    }
    void flush_() override {}
};

std::atomic<bool> batching{false};

// The access log in a regular file: whole lines, appended (O_APPEND) with one write(2) each time it is flushed,
// so the workers sharing the file never interleave parts of lines. spdlog's file sink writes through stdio, whose
// buffer would write out a part of a line once it fills: it flushes every line instead, one write per request.
// Written here because spdlog has no sink that batches whole lines.
class batched_file_sink final : public spdlog::sinks::base_sink<std::mutex> {
public:
    explicit batched_file_sink(const std::string& path) {
        spdlog::details::os::create_dir(spdlog::details::os::dir_name(path));  // as spdlog's own file sink does
        fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
        if (fd_ < 0) throw spdlog::spdlog_ex("Failed opening file " + path + " for writing", errno);
    }
    ~batched_file_sink() override {
        write_out();
        ::close(fd_);
    }
    // Lines are the messages as given (the access log's pattern is "%v"): no pass through the formatter.
    void messages_only() { message_only_ = true; }

protected:
    void sink_it_(const spdlog::details::log_msg& m) override {
        if (message_only_) {
            pending_.append(m.payload.data(), m.payload.size()).push_back('\n');
        } else {
            spdlog::memory_buf_t line;
            formatter_->format(m, line);
            pending_.append(line.data(), line.size());
        }
        if (!batching.load(std::memory_order_relaxed) || pending_.size() >= max_pending) write_out();
    }
    void flush_() override { write_out(); }

private:
    static constexpr size_t max_pending = 64 * 1024;
    void write_out() noexcept {
        for (size_t done = 0; done < pending_.size();) {
            ssize_t n = ::write(fd_, pending_.data() + done, pending_.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;  // a full disk loses these lines, as it would lose them unbatched
            done += size_t(n);
        }
        pending_.clear();
    }
    int fd_ = -1;
    std::string pending_;
    bool message_only_ = false;
};

bool is_regular_file(const std::string& path) {
    struct stat st{};
    return ::stat(path.c_str(), &st) != 0 || S_ISREG(st.st_mode);  // not there yet: it will be made one
}

spdlog::sink_ptr make_sink(const std::string& path, bool error_log) {
    if (path == "-") {
        if (error_log) return std::make_shared<spdlog::sinks::stderr_sink_mt>();
        return std::make_shared<spdlog::sinks::stdout_sink_mt>();
    }
    if (!error_log && is_regular_file(path)) return std::make_shared<batched_file_sink>(path);
    return std::make_shared<spdlog::sinks::basic_file_sink_mt>(path);
}

void build() {
    auto& s = st();
    if (s.forward.error) {
        auto error = std::make_shared<spdlog::logger>("gcorn", std::make_shared<forward_sink>());
        if (statsd::enabled()) error->sinks().push_back(std::make_shared<statsd_counter>());
        error->set_level(s.forward.level);
        spdlog::set_default_logger(error);
        s.error_fd = -1;
        s.access_logger.reset();
        return;
    }
    auto error = std::make_shared<spdlog::logger>("gcorn", make_sink(s.error_path, true));
    auto f = std::make_unique<spdlog::pattern_formatter>();
    f->add_flag<upper_level>('*').add_flag<utc_offset>('Z').set_pattern("[%Y-%m-%d %H:%M:%S %Z] [%P] [%*] %v");
    error->set_formatter(std::move(f));
    if (statsd::enabled()) error->sinks().push_back(std::make_shared<statsd_counter>());
    error->set_level(s.level);
    error->flush_on(spdlog::level::trace);
    spdlog::set_default_logger(error);
    s.error_fd = s.error_path == "-" ? 2 : -1;
    if (!s.access_path.empty()) {
        auto sink = make_sink(s.access_path, false);
        auto* batched = dynamic_cast<batched_file_sink*>(sink.get());
        if (batched) batched->messages_only();
        s.access_logger = std::make_shared<spdlog::logger>("access", std::move(sink));
        s.access_logger->set_pattern("%v");
        // A batched sink writes when it decides (batch_access); the others after every line.
        s.access_logger->flush_on(batched ? spdlog::level::off : spdlog::level::trace);
    } else {
        s.access_logger.reset();
    }
}

void append_request_time(std::string& out, std::chrono::system_clock::time_point t) {
    // [10/Oct/2000:13:55:36 +0000], Apache's common log time; formatted once per second per thread.
    thread_local std::time_t last = -1;
    thread_local char buf[64];
    std::time_t tt = std::chrono::system_clock::to_time_t(t);
    if (tt != last) {
        std::tm tm{};
        ::localtime_r(&tt, &tm);
        std::strftime(buf, sizeof buf, "[%d/%b/%Y:%H:%M:%S %z]", &tm);
        last = tt;
    }
    out += buf;
}

std::string_view header(const header_list* h, std::string_view name) {
    auto* v = detail::find_header(h, name);
    return v ? std::string_view(*v) : std::string_view();
}

std::string_view or_dash(std::string_view v) { return v.empty() ? "-" : v; }

}  // namespace

namespace detail {

const std::string* find_header(const header_list* h, std::string_view name) {
    if (h)
        for (auto& [k, v] : *h)
            if (ascii::iequals(k, name)) return &v;
    return nullptr;
}

std::string basic_user(const header_list* headers) {
    auto auth = header(headers, "authorization");
    if (auth.size() < 6 || !ascii::iequals(auth.substr(0, 5), "basic")) return {};
    auto space = auth.find(' ');
    if (space == std::string_view::npos) return {};
    auto credentials = decode_base64(ascii::trim(auth.substr(space + 1)));
    return credentials.substr(0, credentials.find(':'));
}

}  // namespace detail

void setup(const config::settings& s) {
    statsd::setup(s);
    auto& ls = st();
    ls.error_path = s.errorlog.empty() ? "-" : s.errorlog;
    ls.access_path = s.accesslog;
    std::string level;
    for (char c : s.loglevel) level += ascii::lower(c);  // Gunicorn accepts any case
    ls.level = spdlog::level::from_str(level == "warning" ? "warn" : level);
    ls.format = std::make_unique<access_format>(access_format::of(s));
    build();
}

void reopen() {
    if (st().forward.reopen) return st().forward.reopen();
    try {
        build();
    } catch (const std::exception& e) {
        spdlog::error("cannot reopen log files: {}", e.what());
    }
}

int error_log_fd() { return st().error_fd; }

bool access_enabled() { return st().forward.error ? bool(st().forward.access) : st().access_logger != nullptr; }

void access(const access_entry& e) {
    auto& s = st();
    if (s.forward.access) s.forward.access(e);
    else if (s.access_logger) s.access_logger->info(s.format->render(e));
}

void batch_access(bool on) {
    batching.store(on, std::memory_order_relaxed);
    if (!on) flush_access();
}

void flush_access() {
    if (auto& logger = st().access_logger) logger->flush();
}

void forward_to(external e) {
    st().forward = std::move(e);
    build();
}

bool wants_python_logging(const config::settings& s) {
    return !s.logconfig.empty() || !s.logconfig_dict.empty() || !s.logconfig_json.empty() || s.syslog;
}

bool wants_access_log(const config::settings& s) {
    return !s.accesslog.empty() || !s.logconfig.empty() || !s.logconfig_dict.empty() || !s.logconfig_json.empty() ||
           (s.syslog && !s.disable_redirect_access_to_syslog);
}

access_format::access_format(std::string_view fmt) {
    if (fmt == "json") {
        json_ = true;
        return;
    }
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

access_format access_format::of(const config::settings& s) {
    return access_format(s.access_log_json ? "json" : s.access_log_format);
}

namespace {

// Gunicorn's SafeAtoms: a '"' in a value is escaped, so a quoted field cannot be closed early by a client.
void append_safe(std::string& out, std::string_view v) {
    for (auto quote = v.find('"'); quote != std::string_view::npos; quote = v.find('"')) {
        out.append(v.substr(0, quote)).append("\\\"");
        v.remove_prefix(quote + 1);
    }
    out.append(v);
}

template <class Int>
void append_number(std::string& out, Int n) {
    char buf[24];
    out.append(buf, std::to_chars(buf, buf + sizeof buf, n).ptr);
}

std::string environ_or(const access_entry& e, std::string_view key, std::string_view fallback) {
    auto v = e.environ_lookup ? e.environ_lookup(e.environ_ctx, key) : std::string("-");
    return v == "-" ? std::string(fallback) : v;
}

// One of Gunicorn's single-letter atoms (%(h)s ...); unknown ones print "-" as Gunicorn's do.
void append_atom(std::string& out, const std::string& a, const access_entry& e) {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(e.duration).count();
    auto qpos = [&] { return e.target.find('?'); };  // only for the atoms that split the target
    // One switch on the atom's letter: the format is rendered for every request (most deployments log).
    switch (a.size() == 1 ? a[0] : '\0') {
        case 'h': return append_safe(out, e.remote_addr);
        case 'l': return void(out += "-");
        case 'u': return append_safe(out, or_dash(e.remote_user.empty() ? detail::basic_user(e.request_headers) : e.remote_user));
        case 't': return append_request_time(out, e.start);
        case 'r':
            append_safe(out, e.method), out += ' ', append_safe(out, e.target), out += ' ';
            return append_safe(out, e.protocol);
        case 'm': return append_safe(out, e.method);
        case 'U': return append_safe(out, environ_or(e, "PATH_INFO", e.target.substr(0, qpos())));  // decoded, as Gunicorn
        case 'q': {
            auto at = qpos();
            return append_safe(out, at == std::string_view::npos ? std::string_view{} : e.target.substr(at + 1));
        }
        case 'H': return append_safe(out, e.protocol);
        case 's': return void(out += e.status.substr(0, e.status.find(' ')));
        case 'B':
        case 'b': return append_number(out, e.response_length);  // Gunicorn prints 0, not "-", for b
        case 'f': return append_safe(out, or_dash(header(e.request_headers, "referer")));
        case 'a': return append_safe(out, or_dash(header(e.request_headers, "user-agent")));
        case 'T': return append_number(out, us / 1000000);
        case 'D': return append_number(out, us);
        case 'M': return append_number(out, us / 1000);
        case 'L': {
            char buf[32];
            std::snprintf(buf, sizeof buf, "%.6f", double(us) / 1e6);
            return void(out += buf);
        }
        case 'Q': {  // gcorn: queue time, decimal seconds (as L), "-" if unknown
            if (e.queue.count() < 0) return void(out += "-");
            char buf[32];
            std::snprintf(buf, sizeof buf, "%.6f", double(e.queue.count()) / 1e9);
            return void(out += buf);
        }
        case 'p': return void(out += "<" + std::to_string(::getpid()) + ">");
        default: out += "-";
    }
}

}  // namespace

std::string access_format::render(const access_entry& e) const {
    if (json_) return render_json(e);
    std::string out;
    out.reserve(256);  // a usual line, in one allocation rather than one per doubling
    for (auto& p : parts_) {
        switch (p.kind) {
            case 0: out += p.text; break;
            case 'i': append_safe(out, or_dash(header(e.request_headers, p.text))); break;
            case 'o': append_safe(out, or_dash(header(e.response_headers(), p.text))); break;
            case 'e': append_safe(out, e.environ_lookup ? e.environ_lookup(e.environ_ctx, p.text) : "-"); break;
            default: append_atom(out, p.text, e);
        }
    }
    return out;
}


std::vector<std::pair<std::string, std::string>> atoms(const access_entry& e, std::string_view format) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const char* a : {"h", "l", "u", "t", "r", "m", "U", "q", "H", "s", "B", "b", "f", "a", "T", "D", "M", "L", "Q", "p"}) {
        std::string value;
        append_atom(value, a, e);
        // SafeAtoms escapes '"' in string values; append_atom already did for the quoted ones.
        out.emplace_back(a, std::move(value));
    }
    auto lower = [](std::string_view s) {
        std::string l;
        for (char c : s) l += ascii::lower(c);
        return l;
    };
    auto add_headers = [&](const header_list* h, char kind) {
        if (!h) return;
        for (auto& [k, v] : *h) {
            std::string value;
            append_safe(value, v);
            out.emplace_back("{" + lower(k) + "}" + kind, std::move(value));
        }
    };
    add_headers(e.request_headers, 'i');
    add_headers(e.response_headers(), 'o');
    // Only the environ keys the format names: the whole environ is the app's (and may hold any object).
    for (size_t at = 0; (at = format.find("%({", at)) != std::string_view::npos;) {
        auto close = format.find("}e)s", at);
        if (close == std::string_view::npos) break;
        auto key = format.substr(at + 3, close - at - 3);
        std::string value;
        if (e.environ_lookup) append_safe(value, e.environ_lookup(e.environ_ctx, key));
        out.emplace_back("{" + lower(key) + "}e", value.empty() ? "-" : value);
        at = close;
    }
    return out;
}

}  // namespace gcorn::log
