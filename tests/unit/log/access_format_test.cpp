#include "log/log.hpp"

#include <gtest/gtest.h>

namespace gcorn::log {
namespace {

TEST(access_format, gunicorn_atoms) {
    header_list req{{"User-Agent", "curl/8"}, {"Referer", "http://x/"}, {"X-Id", "42"}};
    header_list resp{{"Content-Type", "text/plain"}};
    access_entry e;
    e.remote_addr = "10.0.0.1";
    e.method = "GET";
    e.target = "/p?q=1";
    e.protocol = "HTTP/1.1";
    e.status = "200 OK";
    e.request_headers = &req;
    e.response_headers_of = [](const void* h) { return static_cast<const header_list*>(h); };
    e.response_ctx = &resp;
    e.response_length = 5;
    e.duration = std::chrono::microseconds(1500);
    access_format f(R"(%(h)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(U)s %(q)s %(m)s %(H)s %(D)s %(M)s %({x-id}i)s %({content-type}o)s)");
    EXPECT_EQ(f.render(e), R"(10.0.0.1 "GET /p?q=1 HTTP/1.1" 200 5 "http://x/" "curl/8" /p q=1 GET HTTP/1.1 1500 1 42 text/plain)");
}

TEST(access_format, missing_values_are_dashes_and_an_empty_body_is_zero) {
    access_entry e;
    e.status = "204 No Content";
    access_format f("%(b)s %(f)s %({x}i)s %(s)s %(u)s");
    EXPECT_EQ(f.render(e), "0 - - 204 -");  // %(b)s: Gunicorn prints str(resp.sent), 0 for no body
}

TEST(access_format, quotes_are_escaped_and_the_basic_user_is_named) {
    header_list headers{{"Authorization", "Basic YWxpY2U6czNjcmV0"}, {"User-Agent", "say \"hi\""}};  // alice:s3cret
    access_entry e;
    e.status = "200 OK";
    e.request_headers = &headers;
    access_format f(R"(%(u)s "%(a)s")");
    EXPECT_EQ(f.render(e), R"(alice "say \"hi\"")");
}

}  // namespace
}  // namespace gcorn::log
