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

// A client that reads as fast as we send never makes a write wait: without yields a big body would hold the async
// worker's hub (every other connection) for the whole transfer.
TEST(response_writer, big_bodies_let_other_connections_run_every_few_mib) {
    memory_stream s;
    auto h = head();
    response_writer w(s, h, true, std::chrono::seconds(1));
    w.start("200 OK", {{"Content-Length", std::to_string(64u << 20)}});
    std::string mib(1 << 20, 'x');
    for (int i = 0; i < 32; ++i) w.write(mib);
    EXPECT_GE(s.yields, 7u);  // 32 MiB written, a yield every 4 MiB
    s.yields = 0;
    w.write_file(-1, 0, 32u << 20);  // memory_stream "sends" 1 MiB per send_file
    EXPECT_GE(s.yields, 7u);
    w.finish();
    EXPECT_TRUE(w.keep_alive());
    EXPECT_EQ(w.body_bytes(), 64u << 20);
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
    EXPECT_FALSE(check_header("X-A", "a\nb").empty());
    EXPECT_FALSE(check_header("X-A", std::string_view("a\0b", 3)).empty());
    EXPECT_FALSE(check_header("X A", "a").empty());
    EXPECT_FALSE(check_header("X-A\r\nSet-Cookie", "x").empty());
    EXPECT_TRUE(check_header("X-A", "fine value").empty());
    EXPECT_FALSE(check_status("200 OK\r\nX: y").empty());
}

TEST(response_writer, status_code_must_be_100_to_599) {
    // RFC 9110 §15.
    EXPECT_TRUE(check_status("599 Custom").empty());
    EXPECT_TRUE(check_status("100 Continue").empty());
    EXPECT_FALSE(check_status("099 Low").empty());
    EXPECT_FALSE(check_status("600 High").empty());
    EXPECT_FALSE(check_status("20 OK").empty());
    EXPECT_FALSE(check_status("200OK").empty());
}

TEST(response_writer, app_content_length_must_be_digits) {
    // The response is framed by it (RFC 9110 §8.6): anything else would desynchronise the client.
    EXPECT_TRUE(check_header("Content-Length", "42").empty());
    for (auto bad : {"", "-1", "+1", "1, 1", "0x10", "ten", "1 0", "99999999999999999999999"})
        EXPECT_FALSE(check_header("content-length", bad).empty()) << bad;
}

TEST(response_writer, repeated_app_content_length_is_sent_once) {
    memory_stream s;
    auto h = head();
    response_writer w(s, h, true, std::chrono::seconds(1));
    w.start("200 OK", {{"Content-Length", "3"}, {"Content-Length", "30"}});
    w.write("abcdef");  // the first length frames the response: the rest of the write is not sent
    w.finish();
    EXPECT_NE(s.output.find("Content-Length: 3\r\n"), std::string::npos);
    EXPECT_EQ(s.output.find("Content-Length: 30"), std::string::npos);
    EXPECT_EQ(s.output.substr(s.output.size() - 7), "\r\n\r\nabc");
    EXPECT_TRUE(w.keep_alive());
}

TEST(response_writer, no_body_for_204_and_304) {
    // RFC 9110 §6.4.1: they end at the head; a Content-Length or chunked framing would announce a body.
    for (auto status : {"204 No Content", "304 Not Modified"}) {
        memory_stream s;
        auto h = head();
        response_writer w(s, h, true, std::chrono::seconds(1));
        w.start(status, {{"Content-Length", "5"}});
        w.write("hello");
        w.finish();
        EXPECT_EQ(s.output.substr(s.output.size() - 4), "\r\n\r\n") << status;
        EXPECT_EQ(s.output.find("Content-Length"), std::string::npos) << status;
        EXPECT_EQ(s.output.find("chunked"), std::string::npos) << status;
        EXPECT_TRUE(w.keep_alive()) << status;
    }
}

TEST(response_writer, head_uses_the_length_hint_without_a_body) {
    memory_stream s;
    auto h = head("HEAD");
    response_writer w(s, h, true, std::chrono::seconds(1));
    w.start("200 OK", {});
    w.set_length_hint(5);
    w.write("hello");
    w.finish();
    EXPECT_NE(s.output.find("Content-Length: 5\r\n"), std::string::npos);
    EXPECT_EQ(s.output.substr(s.output.size() - 4), "\r\n\r\n");
    EXPECT_TRUE(w.keep_alive());
}

TEST(response_writer, hop_by_hop_headers_from_the_app_are_dropped) {
    // RFC 9110 §7.6.1 / PEP 3333: framing is the server's; an app's Transfer-Encoding would double-frame.
    memory_stream s;
    auto h = head();
    response_writer w(s, h, true, std::chrono::seconds(1));
    w.start("200 OK", {{"Transfer-Encoding", "chunked"}, {"Content-Length", "2"}, {"Upgrade", "h2c"}});
    w.write("ok");
    w.finish();
    EXPECT_EQ(s.output.find("Transfer-Encoding"), std::string::npos);
    EXPECT_EQ(s.output.find("Upgrade"), std::string::npos);
    EXPECT_EQ(s.output.substr(s.output.size() - 6), "\r\n\r\nok");
}

// The fields are framed as they are added, so the access log and post_request read them back from the head:
// what was sent in order, then what the app gave that was the server's to set.
TEST(response_writer, headers_read_back_from_the_head) {
    memory_stream s;
    auto h = head();
    response_writer w(s, h, true, std::chrono::seconds(1));
    w.start("200 OK", {{"Content-Type", "text/plain"}, {"Connection", "close"}, {"X-Empty", ""},
                       {"Set-Cookie", "a=b; Path=/"}, {"Content-Length", "2"}, {"Content-Length", "2"}});
    header_list before_sent = w.headers();
    w.write("ok");
    w.finish();
    header_list expected = {{"Content-Type", "text/plain"}, {"X-Empty", ""}, {"Set-Cookie", "a=b; Path=/"},
                            {"Content-Length", "2"}, {"Connection", "close"}, {"Content-Length", "2"}};
    EXPECT_EQ(before_sent, expected);
    EXPECT_EQ(w.headers(), expected);
    EXPECT_NE(s.output.find("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Empty: \r\nSet-Cookie: a=b; Path=/\r\n"
                            "Content-Length: 2\r\n"),
              std::string::npos) << s.output;
    EXPECT_EQ(s.output.find("Content-Length: 2\r\nContent-Length"), std::string::npos);
    EXPECT_FALSE(w.keep_alive());  // the app's Connection: close is honoured, and sent once, by the server
}

// start_response checks each field as it frames it: a refused one leaves the writer unstarted, whatever an earlier
// start (exc_info) had set, so nothing half-checked is ever sent.
TEST(response_writer, a_refused_field_leaves_the_writer_unstarted) {
    memory_stream s;
    auto h = head();
    response_writer w(s, h, true, std::chrono::seconds(1));
    w.start("200 OK", {{"Content-Length", "2"}});
    w.begin("500 Internal Server Error");
    EXPECT_TRUE(w.add_header("X-Fine", "1").empty());
    EXPECT_FALSE(w.add_header("X-Bad", "a\r\nSet-Cookie: x").empty());
    EXPECT_FALSE(w.started());
    w.begin("502 Bad Gateway");
    EXPECT_TRUE(w.add_header("Content-Length", "0").empty());
    w.end_headers();
    EXPECT_TRUE(w.started());
    w.finish();
    EXPECT_EQ(s.output.find("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n"), 0u) << s.output;
    EXPECT_EQ(s.output.find("X-Fine"), std::string::npos);
    EXPECT_EQ(w.status_code(), 502);
}

// Field names are told apart eight bytes at a time with case folded by one OR: any case matches, and no other
// token character folds into a letter or '-' (an '_' or a '^' in place of '-' is another field).
TEST(response_writer, field_names_match_in_any_case_and_only_exactly) {
    memory_stream s;
    auto h = head();
    response_writer w(s, h, true, std::chrono::seconds(1));
    w.start("200 OK", {{"CONTENT-LENGTH", "2"}, {"content-length", "9"}, {"Content_Length", "x"},
                       {"Content^Length", "y"}, {"cOnNeCtIoN", "close"}, {"DATE", "today"}, {"sErVeR", "me"}});
    w.write("ok");
    w.finish();
    auto out = s.output;
    EXPECT_NE(out.find("CONTENT-LENGTH: 2\r\n"), std::string::npos) << out;
    EXPECT_EQ(out.find("content-length: 9"), std::string::npos);  // a repeat
    EXPECT_NE(out.find("Content_Length: x\r\nContent^Length: y\r\n"), std::string::npos);
    EXPECT_EQ(out.find("cOnNeCtIoN"), std::string::npos);
    EXPECT_EQ(out.find("Date: "), std::string::npos);  // the app's DATE stands
    EXPECT_EQ(out.find("Server: gcorn"), std::string::npos);
    EXPECT_EQ(out.substr(out.size() - 6), "\r\n\r\nok");
    EXPECT_FALSE(w.keep_alive());
}

// A head past the inline buffer moves to the heap whole, in order.
TEST(response_writer, a_long_head_is_sent_whole) {
    memory_stream s;
    auto h = head();
    response_writer w(s, h, true, std::chrono::seconds(1));
    header_list fields;
    for (int i = 0; i < 40; ++i) fields.emplace_back("X-Field-" + std::to_string(i), std::string(30, char('a' + i % 26)));
    w.start("200 OK", fields);
    w.write("ok");
    w.finish();
    std::string expected = "HTTP/1.1 200 OK\r\n";
    for (auto& [name, value] : fields) expected += name + ": " + value + "\r\n";
    EXPECT_EQ(s.output.substr(0, expected.size()), expected);
    EXPECT_EQ(w.headers(), fields);
    EXPECT_TRUE(s.output.ends_with("\r\n\r\n2\r\nok\r\n0\r\n\r\n"));  // chunked
}

// Values are checked eight bytes at a time: a control byte is found at every position of every length, and a tab,
// DEL's neighbours and obs-text (0x80-0xff) pass wherever they are.
TEST(response_writer, field_values_are_checked_at_every_position) {
    for (size_t len = 1; len <= 24; ++len)
        for (size_t pos = 0; pos < len; ++pos) {
            for (unsigned char bad : {0x00, 0x0a, 0x0d, 0x1f, 0x7f}) {
                std::string v(len, 'a');
                v[pos] = char(bad);
                EXPECT_FALSE(check_header("X-A", v).empty()) << len << " " << pos << " " << int(bad);
            }
            for (unsigned char fine : {0x09, 0x20, 0x7e, 0x80, 0xff}) {
                std::string v(len, 'a');
                v[pos] = char(fine);
                EXPECT_TRUE(check_header("X-A", v).empty()) << len << " " << pos << " " << int(fine);
            }
        }
}

// RFC 8297: 103 Early Hints go out at once and before the final head (also after start(), which sends nothing).
TEST(response_writer, early_hints_precede_the_response) {
    memory_stream s;
    auto h = head();
    response_writer w(s, h, true, std::chrono::seconds(1));
    EXPECT_TRUE(w.send_early_hints({{"Link", "</a.css>; rel=preload"}}));
    EXPECT_EQ(s.output, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n");
    w.start("200 OK", {{"Content-Length", "2"}});
    EXPECT_TRUE(w.send_early_hints({{"Link", "</b.js>"}, {"Link", "</c.js>"}}));
    w.write("ok");
    w.finish();
    EXPECT_NE(s.output.find("\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </b.js>\r\nLink: </c.js>\r\n\r\nHTTP/1.1 200 OK\r\n"),
              std::string::npos) << s.output;
    EXPECT_TRUE(w.keep_alive());
}

// RFC 9110 §15.2: no interim responses to HTTP/1.0; none after the final head (it would read as the next response).
TEST(response_writer, no_early_hints_to_http_1_0_or_after_the_head) {
    memory_stream s10;
    auto h10 = head("GET", 10);
    response_writer w10(s10, h10, true, std::chrono::seconds(1));
    EXPECT_FALSE(w10.send_early_hints({{"Link", "</a.css>"}}));
    EXPECT_TRUE(s10.output.empty());

    memory_stream s;
    auto h = head();
    response_writer w(s, h, true, std::chrono::seconds(1));
    w.start("200 OK", {});
    w.write("abc");
    auto sent = s.output.size();
    EXPECT_FALSE(w.send_early_hints({{"Link", "</a.css>"}}));
    EXPECT_EQ(s.output.size(), sent);
}

}  // namespace
}  // namespace gcorn::http
