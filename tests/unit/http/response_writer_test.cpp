#include "http/response_writer.hpp"

#include <gtest/gtest.h>

#include "memory_stream.hpp"

namespace gcorn::http {
namespace {

using testing::memory_stream;

request_head head(std::string method = "GET", int version = 11) {
    request_head h;
    h.method = method;
    h.target = "/";
    h.version = version;
    h.keep_alive = version == 11;
    return h;
}

TEST(response_writer, chunked_when_length_unknown_on_1_1) {
    memory_stream s;
    auto h = head();
    response_writer w(s, h, true, std::chrono::seconds(1));
    w.start("200 OK", {{"Content-Type", "text/plain"}});
    w.write("abc");
    w.write("de");
    w.finish();
    EXPECT_NE(s.output.find("Transfer-Encoding: chunked\r\n"), std::string::npos);
    EXPECT_NE(s.output.find("\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), std::string::npos);
    EXPECT_TRUE(w.keep_alive());
}

TEST(response_writer, close_delimited_on_1_0) {
    memory_stream s;
    auto h = head("GET", 10);
    response_writer w(s, h, true, std::chrono::seconds(1));
    w.start("200 OK", {});
    w.write("abc");
    w.finish();
    EXPECT_EQ(s.output.find("chunked"), std::string::npos);
    EXPECT_NE(s.output.find("Connection: close\r\n"), std::string::npos);
    EXPECT_FALSE(w.keep_alive());
}

TEST(response_writer, head_keeps_length_but_sends_no_body) {
    memory_stream s;
    auto h = head("HEAD");
    response_writer w(s, h, true, std::chrono::seconds(1));
    w.start("200 OK", {{"Content-Length", "5"}});
    w.write("hello");
    w.finish();
    EXPECT_NE(s.output.find("Content-Length: 5\r\n"), std::string::npos);
    EXPECT_EQ(s.output.substr(s.output.size() - 4), "\r\n\r\n");
}

TEST(response_writer, short_body_closes_the_connection) {
    memory_stream s;
    auto h = head();
    response_writer w(s, h, true, std::chrono::seconds(1));
    w.start("200 OK", {{"Content-Length", "10"}});
    w.write("abc");
    w.finish();
    EXPECT_FALSE(w.keep_alive());
}

TEST(response_writer, rejects_response_splitting) {
    EXPECT_FALSE(check_header("X-A", "a\r\nSet-Cookie: x").empty());
    EXPECT_FALSE(check_header("X A", "a").empty());
    EXPECT_TRUE(check_header("X-A", "fine value").empty());
    EXPECT_FALSE(check_status("200 OK\r\nX: y").empty());
}

}  // namespace
}  // namespace gcorn::http
