#include "master/metrics.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/fmt/fmt.h>

namespace gcorn::master {
namespace {

namespace m = sys::metrics;

uint64_t at(const fleet& f, size_t i) { return f.totals[i]; }

struct histogram_view {
    const fleet& f;
    m::histogram h;
    uint64_t bucket(size_t i) const { return at(f, m::at::histograms + size_t(h) * m::at::histogram_size + i); }
    uint64_t count() const {
        uint64_t n = 0;
        for (size_t i = 0; i < m::n_buckets; ++i) n += bucket(i);
        return n;
    }
    double sum_s() const { return double(bucket(m::n_buckets)) / 1e9; }
};

uint64_t requests_total(const fleet& f) {
    uint64_t n = 0;
    for (size_t i = 0; i < m::method_names.size() * m::status_names.size(); ++i) n += at(f, m::at::requests + i);
    return n;
}

uint64_t requests_by_status(const fleet& f, size_t status) {
    uint64_t n = 0;
    for (size_t method = 0; method < m::method_names.size(); ++method)
        n += at(f, m::at::requests + method * m::status_names.size() + status);
    return n;
}

// A bucket bound as Prometheus' own clients print it: "0.5", "1.0", "10.0".
std::string bound(double b) {
    auto s = fmt::format("{}", b);
    if (s.find_first_of(".e") == std::string::npos) s += ".0";
    return s;
}

class exposition {
public:
    void family(std::string_view name, std::string_view type, std::string_view help) {
        fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    }
    template <class V>
    void sample(std::string_view name, std::string_view labels, V value) {
        if (labels.empty()) fmt::format_to(std::back_inserter(out_), "{} {}\n", name, value);
        else fmt::format_to(std::back_inserter(out_), "{}{{{}}} {}\n", name, labels, value);
    }
    template <class V>
    void single(std::string_view name, std::string_view type, std::string_view help, V value) {
        family(name, type, help);
        sample(name, "", value);
    }
    void histogram(std::string_view name, std::string_view help, histogram_view h) {
        family(name, "histogram", help);
        uint64_t cumulative = 0;
        std::string bucket = std::string(name) + "_bucket";
        for (size_t i = 0; i < m::bucket_bounds.size(); ++i) {
            cumulative += h.bucket(i);
            sample(bucket, fmt::format("le=\"{}\"", bound(m::bucket_bounds[i])), cumulative);
        }
        cumulative += h.bucket(m::bucket_bounds.size());
        sample(bucket, "le=\"+Inf\"", cumulative);
        sample(std::string(name) + "_sum", "", h.sum_s());
        sample(std::string(name) + "_count", "", cumulative);
    }
    std::string take() { return std::move(out_); }

private:
    std::string out_;
};

}  // namespace

std::string prometheus_text(const fleet& f) {
    exposition e;
    e.family("gcorn_http_requests_total", "counter", "HTTP requests answered, by method and status class.");
    for (size_t method = 0; method < m::method_names.size(); ++method)
        for (size_t status = 0; status < m::status_names.size(); ++status)
            if (auto n = at(f, m::at::requests + method * m::status_names.size() + status))
                e.sample("gcorn_http_requests_total",
                         fmt::format("method=\"{}\",status=\"{}\"", m::method_names[method], m::status_names[status]), n);
    e.histogram("gcorn_http_request_duration_seconds",
                "From the request head complete to its response sent.",
                {f, m::histogram::request});
    e.histogram("gcorn_http_app_duration_seconds", "Time in the WSGI app, response streaming included.",
                {f, m::histogram::app});
    e.histogram("gcorn_http_request_queue_seconds",
                "From the request head complete (or a trusted proxy's X-Request-Start) to the app being called.", {f, m::histogram::queue});
    e.single("gcorn_http_request_bytes_total", "counter", "Bytes received: request heads and bodies.",
             at(f, m::at::bytes_in));
    e.single("gcorn_http_response_bytes_total", "counter", "Response body bytes sent.", at(f, m::at::bytes_out));
    e.single("gcorn_http_requests_shed_total", "counter",
             "Requests answered 503 without the app: they had waited longer than max_queue_time.",
             at(f, m::at::shed));
    e.single("gcorn_http_request_timeouts_total", "counter",
             "Requests that outlived --request-timeout (or their environ[\"gcorn.deadline\"]).",
             at(f, m::at::deadline_timeouts));
    e.single("gcorn_http_keepalive_reused_total", "counter", "Requests served on a connection that served one before.",
             at(f, m::at::keepalive_reused));
    e.single("gcorn_connections_accepted_total", "counter", "Connections accepted by the workers.",
             at(f, m::at::connections));
    e.single("gcorn_connections_dropped_total", "counter",
             "Connections gcorn closed with a request unanswered (worker killed or crashed, quick stop, "
             "graceful_timeout passed).",
             at(f, m::at::dropped));
    e.single("gcorn_event_loop_blocked_seconds_total", "counter",
             "Time the workers' event loops were late by more than 20 ms (a greenlet that did not yield).",
             double(at(f, m::at::blocked_ns)) / 1e9);
    e.single("gcorn_event_loop_blocked_total", "counter", "Times a worker's event loop was late by more than 20 ms.",
             at(f, m::at::blocked_episodes));
    e.family("gcorn_worker_restarts_total", "counter", "Worker exits, by cause.");
    for (auto& [cause, n] : f.exits) e.sample("gcorn_worker_restarts_total", fmt::format("cause=\"{}\"", cause), n);
    e.single("gcorn_connections_open", "gauge", "Connections the workers hold.", f.connections_open);
    e.single("gcorn_connections_idle", "gauge", "Keep-alive connections waiting for their next request.",
             f.connections_idle);
    e.single("gcorn_http_requests_in_flight", "gauge", "Requests being served.", f.in_flight);
    e.single("gcorn_greenlets", "gauge", "Greenlets alive in the async workers' hubs.", f.greenlets);
    e.single("gcorn_workers", "gauge", "Worker processes alive.", f.workers);
    e.single("gcorn_workers_booted", "gauge", "Worker processes that have loaded the app.", f.booted);
    e.single("gcorn_workers_target", "gauge", "The number of workers the master keeps (workers, TTIN, TTOU).", f.target);
    if (f.backlog >= 0)
        e.single("gcorn_listen_backlog", "gauge", "Connections waiting in the TCP listeners' accept queues.", f.backlog);
    e.single("gcorn_start_time_seconds", "gauge", "When the master started, Unix time.", f.start_time_s);
    return e.take();
}

std::string status_table(const fleet& f) {
    std::string out = fmt::format("{:>8} {:>4} {:>9} {:>9} {:>6} {:>9} {:<9} {}\n", "PID", "AGE", "UPTIME", "REQUESTS",
                                  "ACTIVE", "RSS", "STATE", "REQUEST");
    for (auto& r : f.rows) {
        std::string rss = r.rss_bytes < 0 ? "-" : fmt::format("{:.1f}M", double(r.rss_bytes) / (1 << 20));
        std::string request = r.request.empty() ? "-" : fmt::format("{} ({:.1f}s)", r.request, r.request_age_s);
        fmt::format_to(std::back_inserter(out), "{:>8} {:>4} {:>8.0f}s {:>9} {:>6} {:>9} {:<9} {}\n", r.pid, r.age,
                       r.uptime_s, r.requests, r.in_flight, rss, r.state, request);
    }
    fmt::format_to(std::back_inserter(out), "{} workers ({} wanted), {} requests served, {} in flight\n", f.workers,
                   f.target, requests_total(f), f.in_flight);
    return out;
}

std::string stats_text(const fleet& f) {
    std::string out;
    auto line = [&](std::string_view k, auto v) { fmt::format_to(std::back_inserter(out), "{:<28} {}\n", k, v); };
    line("workers", f.workers);
    line("workers_target", f.target);
    line("requests", requests_total(f));
    for (size_t s = 0; s < m::status_names.size(); ++s) line(fmt::format("requests_{}", m::status_names[s]), requests_by_status(f, s));
    line("in_flight", f.in_flight);
    line("connections_open", f.connections_open);
    line("connections_idle", f.connections_idle);
    line("connections_dropped", at(f, m::at::dropped));
    line("bytes_in", at(f, m::at::bytes_in));
    line("bytes_out", at(f, m::at::bytes_out));
    histogram_view d{f, m::histogram::request};
    line("mean_request_seconds", d.count() ? d.sum_s() / double(d.count()) : 0.0);
    for (auto& [cause, n] : f.exits) line("worker_exits_" + cause, n);
    return out;
}

std::string stats_json(const fleet& f) {
    using nlohmann::json;
    json status = json::object();
    for (size_t s = 0; s < m::status_names.size(); ++s) status[std::string(m::status_names[s])] = requests_by_status(f, s);
    auto hist = [&](m::histogram h) {
        histogram_view v{f, h};
        json buckets = json::array();
        uint64_t cumulative = 0;
        for (size_t i = 0; i < m::n_buckets; ++i) {
            cumulative += v.bucket(i);
            buckets.push_back({{"le", i < m::bucket_bounds.size() ? json(m::bucket_bounds[i]) : json("+Inf")},
                               {"count", cumulative}});
        }
        return json{{"count", v.count()}, {"sum_seconds", v.sum_s()}, {"buckets", buckets}};
    };
    json workers = json::array();
    for (auto& r : f.rows)
        workers.push_back({{"pid", r.pid}, {"age", r.age}, {"uptime_seconds", r.uptime_s}, {"requests", r.requests},
                           {"in_flight", r.in_flight}, {"connections", r.connections},
                           {"request", r.request.empty() ? json(nullptr) : json(r.request)},
                           {"request_seconds", r.request.empty() ? json(nullptr) : json(r.request_age_s)},
                           {"rss_bytes", r.rss_bytes < 0 ? json(nullptr) : json(r.rss_bytes)}, {"state", r.state}});
    json j = {
        {"workers", workers},
        {"workers_alive", f.workers},
        {"workers_target", f.target},
        {"requests", {{"total", requests_total(f)}, {"by_status", status}}},
        {"in_flight", f.in_flight},
        {"connections", {{"open", f.connections_open}, {"idle", f.connections_idle},
                         {"accepted", at(f, m::at::connections)}, {"dropped", at(f, m::at::dropped)}}},
        {"bytes", {{"in", at(f, m::at::bytes_in)}, {"out", at(f, m::at::bytes_out)}}},
        {"request_duration", hist(m::histogram::request)},
        {"app_duration", hist(m::histogram::app)},
        {"queue_time", hist(m::histogram::queue)},
        {"worker_exits", f.exits},
        {"backlog", f.backlog < 0 ? json(nullptr) : json(f.backlog)},
    };
    return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace gcorn::master
