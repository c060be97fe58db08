#include "log/log.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "config/settings.hpp"

namespace gcorn::log {
namespace {

using nlohmann::json;

access_entry request(const header_list& headers, std::string_view target = "/p?q=1") {
    access_entry e;
    e.remote_addr = "10.0.0.1";
    e.method = "GET";
    e.target = target;
    e.protocol = "HTTP/1.1";
    e.status = "404 Not Found";
    e.request_headers = &headers;
    e.response_length = 5;
    e.duration = std::chrono::microseconds(1500);
    return e;
}

TEST(access_json, every_field_typed) {
    header_list headers{{"User-Agent", "curl/8"}, {"Authorization", "Basic YWxpY2U6czNjcmV0"}};  // alice:s3cret
    auto line = access_format("json").render(request(headers));
    EXPECT_EQ(line.find('\n'), std::string::npos);
    auto j = json::parse(line);
    EXPECT_EQ(j["remote_addr"], "10.0.0.1");
    EXPECT_EQ(j["remote_user"], "alice");
    EXPECT_EQ(j["method"], "GET");
    EXPECT_EQ(j["path"], "/p");
    EXPECT_EQ(j["query"], "q=1");
    EXPECT_EQ(j["protocol"], "HTTP/1.1");
    EXPECT_EQ(j["request_line"], "GET /p?q=1 HTTP/1.1");
    EXPECT_EQ(j["status"], 404);
    EXPECT_EQ(j["response_length"], 5);
    EXPECT_TRUE(j["referer"].is_null());
    EXPECT_EQ(j["user_agent"], "curl/8");
    EXPECT_DOUBLE_EQ(j["duration_s"].get<double>(), 0.0015);
    EXPECT_EQ(j["duration_us"], 1500);
    EXPECT_TRUE(j["queue_s"].is_null());  // unknown (negative)
    EXPECT_EQ(j["pid"], ::getpid());
    auto time = j["time"].get<std::string>();  // 2026-12-02T13:55:36.123456+01:00
    ASSERT_EQ(time.size(), 32u) << time;
    EXPECT_EQ(time[10], 'T');
    EXPECT_EQ(time[29], ':');
}

TEST(access_json, queue_time_in_seconds) {
    header_list headers;
    auto e = request(headers);
    e.queue = std::chrono::milliseconds(250);
    EXPECT_DOUBLE_EQ(json::parse(render_json(e))["queue_s"].get<double>(), 0.25);
}

TEST(access_json, odd_bytes_still_make_valid_json) {
    header_list headers{{"User-Agent", "say \"hi\" \\ \x01 \xff\xfe"}};
    auto j = json::parse(render_json(request(headers, "/a%22b%5C%01%FF/caf%C3%A9")));
    EXPECT_EQ(j["path"], "/a\"b\\\x01\xEF\xBF\xBD/caf\xC3\xA9");  // decoded; a byte that is not UTF-8 is U+FFFD
    EXPECT_EQ(j["user_agent"], "say \"hi\" \\ \x01 \xEF\xBF\xBD\xEF\xBF\xBD");
    EXPECT_NE(render_json(request(headers)).find("\\u0001"), std::string::npos);
}

TEST(access_json, request_id_passed_through_trimmed_and_capped_or_generated) {
    header_list sent{{"X-Request-ID", "  abc-123 "}};
    EXPECT_EQ(json::parse(render_json(request(sent)))["request_id"], "abc-123");
    header_list long_id{{"x-request-id", std::string(500, 'x')}};
    EXPECT_EQ(json::parse(render_json(request(long_id)))["request_id"], std::string(200, 'x'));
    header_list none;
    auto a = json::parse(render_json(request(none)))["request_id"].get<std::string>();
    auto b = json::parse(render_json(request(none)))["request_id"].get<std::string>();
    EXPECT_EQ(a.size(), 32u);
    EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
    EXPECT_NE(a, b);
}

TEST(access_json, chosen_by_the_format_json_or_by_access_log_json) {
    config::settings s;
    EXPECT_FALSE(access_format::of(s).json());
    s.access_log_json = true;
    EXPECT_TRUE(access_format::of(s).json());  // a custom access_log_format is then ignored
    s.access_log_json = false;
    s.access_log_format = "json";
    EXPECT_TRUE(access_format::of(s).json());
}

}  // namespace
}  // namespace gcorn::log
