#include "http/request_reader.hpp"

#include <gtest/gtest.h>

#include "http/errors.hpp"
#include "memory_stream.hpp"

namespace gcorn::http {
namespace {

using testing::memory_stream;
constexpr auto forever = std::chrono::hours(1);

std::string read_body(request_reader& r) {
    std::string out;
    char buf[7];
    for (size_t n; (n = r.read(buf)) > 0;) out.append(buf, n);
    return out;
}

TEST(request_reader, pipelined_requests_with_bodies) {
    memory_stream s;
    s.input = {"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\n\r\n"};
    request_reader r(s, {}, std::chrono::seconds(1));
    auto h1 = r.read_head(clock::now() + forever, clock::now() + forever);
    ASSERT_TRUE(h1);
    EXPECT_EQ(h1->target, "/a");
    EXPECT_EQ(read_body(r), "hello");
    auto h2 = r.read_head(clock::now() + forever, clock::now() + forever);
    ASSERT_TRUE(h2);
    EXPECT_EQ(h2->target, "/b");
    EXPECT_FALSE(r.read_head(clock::now() + forever, clock::now() + forever));
}

TEST(request_reader, chunked_body_with_trailers) {
    memory_stream s;
    s.input = {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", "5\r\nhel", "lo\r\n3;x=y\r\n, w\r\n0\r\nX-T: 1\r\n\r\n"};
    request_reader r(s, {}, std::chrono::seconds(1));
    auto h = r.read_head(clock::now() + forever, clock::now() + forever);
    ASSERT_TRUE(h && h->chunked);
    EXPECT_EQ(read_body(r), "hello, w");
    EXPECT_TRUE(r.body_complete());
}

TEST(request_reader, content_length_with_transfer_encoding_is_400) {
    memory_stream s;
    s.input = {"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"};
    request_reader r(s, {}, std::chrono::seconds(1));
    try {
        r.read_head(clock::now() + forever, clock::now() + forever);
        FAIL();
    } catch (const http_error& e) {
        EXPECT_EQ(e.status, 400);
    }
}

TEST(request_reader, expect_continue_sent_on_first_read) {
    memory_stream s;
    s.input = {"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n", "ok"};
    request_reader r(s, {}, std::chrono::seconds(1));
    ASSERT_TRUE(r.read_head(clock::now() + forever, clock::now() + forever));
    EXPECT_EQ(s.output, "");
    EXPECT_EQ(read_body(r), "ok");
    EXPECT_EQ(s.output, "HTTP/1.1 100 Continue\r\n\r\n");
}

}  // namespace
}  // namespace gcorn::http
