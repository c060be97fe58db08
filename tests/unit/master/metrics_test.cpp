// The master's renderings of the fleet (master/metrics): the Prometheus text, status and stats.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "master/metrics.hpp"

using namespace gcorn;
namespace m = gcorn::sys::metrics;

namespace {

master::fleet sample() {
    master::fleet f;
    f.totals[m::at::requests + m::method_class("GET") * m::status_names.size() + m::status_class(200)] = 7;
    f.totals[m::at::requests + m::method_class("BREW") * m::status_names.size() + m::status_class(404)] = 2;
    size_t base = m::at::histograms + size_t(m::histogram::request) * m::at::histogram_size;
    f.totals[base + m::bucket_of(300'000)] = 5;        // 0.3 ms: the first bucket
    f.totals[base + m::bucket_of(2'000'000'000)] = 3;  // 2 s
    f.totals[base + m::bucket_of(int64_t(100e9))] = 1;  // past the last bound: +Inf only
    f.totals[base + m::n_buckets] = 108'000'000'000;   // the sum, ns
    f.exits["crash"] = 1;
    f.workers = 2;
    f.target = 2;
    f.backlog = -1;
    master::worker_row r;
    r.pid = 42;
    r.age = 1;
    r.request = "GET /slow \"x\"";
    r.request_age_s = 1.5;
    r.state = "busy";
    f.rows.push_back(r);
    return f;
}

bool has_line(const std::string& text, const std::string& line) {
    return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

}  // namespace

TEST(Metrics, BucketsAreInclusiveUpperBounds) {
    EXPECT_EQ(m::bucket_of(500'000), 0u);  // exactly 0.5 ms is in le="0.0005"
    EXPECT_EQ(m::bucket_of(500'001), 1u);
    EXPECT_EQ(m::bucket_of(int64_t(31e9)), m::bucket_bounds.size());
    EXPECT_EQ(m::status_class(99), m::status_names.size() - 1);
    EXPECT_EQ(m::method_class("get"), m::method_names.size() - 1);  // methods are case-sensitive
}

TEST(Metrics, PrometheusTextHasCumulativeBucketsAndLabels) {
    auto text = master::prometheus_text(sample());
    EXPECT_TRUE(has_line(text, "gcorn_http_requests_total{method=\"GET\",status=\"2xx\"} 7")) << text;
    EXPECT_TRUE(has_line(text, "gcorn_http_requests_total{method=\"other\",status=\"4xx\"} 2")) << text;
    EXPECT_TRUE(has_line(text, "gcorn_http_request_duration_seconds_bucket{le=\"0.0005\"} 5")) << text;
    EXPECT_TRUE(has_line(text, "gcorn_http_request_duration_seconds_bucket{le=\"1.0\"} 5")) << text;
    EXPECT_TRUE(has_line(text, "gcorn_http_request_duration_seconds_bucket{le=\"2.5\"} 8")) << text;
    EXPECT_TRUE(has_line(text, "gcorn_http_request_duration_seconds_bucket{le=\"30.0\"} 8")) << text;
    EXPECT_TRUE(has_line(text, "gcorn_http_request_duration_seconds_bucket{le=\"+Inf\"} 9")) << text;
    EXPECT_TRUE(has_line(text, "gcorn_http_request_duration_seconds_count 9")) << text;
    EXPECT_TRUE(has_line(text, "gcorn_http_request_duration_seconds_sum 108")) << text;
    EXPECT_TRUE(has_line(text, "gcorn_worker_restarts_total{cause=\"crash\"} 1")) << text;
    EXPECT_TRUE(has_line(text, "# TYPE gcorn_http_request_duration_seconds histogram")) << text;
    EXPECT_EQ(text.find("gcorn_listen_backlog"), std::string::npos);  // the kernel did not say
}

TEST(Metrics, StatsJsonParsesAndStatusShowsTheRequest) {
    auto f = sample();
    auto j = nlohmann::json::parse(master::stats_json(f));
    EXPECT_EQ(j["requests"]["total"], 9);
    EXPECT_EQ(j["requests"]["by_status"]["4xx"], 2);
    EXPECT_EQ(j["workers"][0]["request"], "GET /slow \"x\"");
    EXPECT_EQ(j["request_duration"]["buckets"].back()["count"], 9);
    auto status = master::status_table(f);
    EXPECT_NE(status.find("GET /slow \"x\" (1.5s)"), std::string::npos) << status;
    EXPECT_NE(status.find("2 workers (2 wanted), 9 requests served"), std::string::npos) << status;
}
