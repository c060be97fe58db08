#include "http/head_scan.hpp"

#include <gtest/gtest.h>

#include "base/ascii.hpp"

#include "http/errors.hpp"
#include "memory_stream.hpp"

namespace gcorn::http {
namespace {

using testing::gunicorn_limits;

int status_of(std::string_view raw, limits lim = gunicorn_limits) {
    head_scan scan;
    try {
        return scan.scan(raw, lim) == head_scan::result::complete ? 200 : 0;
    } catch (const http_error& e) {
        return e.status;
    }
}

TEST(head_scan, accepts_a_simple_head) { EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 200); }

// The scan looks at eight bytes at a time: every control byte is found wherever it sits in a head line (long
// field values included), and a tab, DEL's neighbour and bytes from 0x80 never stop it.
TEST(head_scan, control_bytes_are_found_at_every_position) {
    for (size_t len = 1; len <= 40; ++len)
        for (size_t pos = 0; pos < len; ++pos) {
            for (unsigned char c : {0x00, 0x0a, 0x0d, 0x1f, 0x7f}) {
                std::string v(len, 'v');
                v[pos] = char(c);
                EXPECT_EQ(ascii::find_control(v), pos) << len << " " << pos << " " << int(c);
                EXPECT_EQ(ascii::find_control(v, pos), pos);
                EXPECT_EQ(status_of("GET / HTTP/1.1\r\nX-Long: " + v + "\r\n\r\n"), 400) << len << " " << pos;
            }
            for (unsigned char c : {0x09, 0x20, 0x7e, 0x80, 0xff}) {
                std::string v(len, 'v');
                v[pos] = char(c);
                EXPECT_EQ(ascii::find_control(v), len);
            }
        }
}

// Tabs are allowed where a control byte is looked for: the scan goes on after each, in the same word or the next.
TEST(head_scan, tabs_do_not_hide_the_control_byte_after_them) {
    using namespace std::literals;
    EXPECT_EQ(ascii::find_control("\t\x01" "abcdefgh"sv), 1u);
    EXPECT_EQ(ascii::find_control("a\t\tb\t\t\t\tc\t\x7f"sv), 10u);
    EXPECT_EQ(ascii::find_control("\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\r\n"sv), 16u);
    EXPECT_EQ(ascii::find_control("abc\x80\xff\xa0\x9f\x7e\t "sv), 10u);
    EXPECT_EQ(ascii::find_control("0123456789\r\n"sv, 11), 11u);
}

TEST(head_scan, waits_for_the_rest) { EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\n"), 0); }

TEST(head_scan, refuses_bare_lf_and_obs_fold) {
    EXPECT_EQ(status_of("GET / HTTP/1.1\nHost: a\r\n\r\n"), 400);
    EXPECT_EQ(status_of("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n"), 400);
}

// RFC 9112 §5.1: a field line is a token, a colon and a value; anything else is refused before it is split.
TEST(head_scan, field_lines_are_a_token_and_a_colon) {
    for (auto line : {"Host a", "Host", ": a", "Ho st: a", "Host\"x: a", "X(1): a", "\xc3\xa9: a"})
        EXPECT_EQ(status_of(std::string("GET / HTTP/1.1\r\n") + line + "\r\n\r\n"), 400) << line;
    for (auto line : {"Host:a", "Host: a:b", "X-!#$%&'*+.^_`|~: a", "X:", "X: \xc3\xa9"})
        EXPECT_EQ(status_of(std::string("GET / HTTP/1.1\r\n") + line + "\r\n\r\n"), 200) << line;
    EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 400);
    auto strip = gunicorn_limits;
    strip.strip_header_spaces = true;
    EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost \t: a\r\n\r\n", strip), 200);
    EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHo st : a\r\n\r\n", strip), 400);
}

TEST(head_scan, limits_answer_414_and_431) {
    EXPECT_EQ(status_of("GET /" + std::string(5000, 'a') + " HTTP/1.1\r\n\r\n"), 414);
    EXPECT_EQ(status_of("GET / HTTP/1.1\r\nX: " + std::string(9000, 'a') + "\r\n\r\n"), 431);
}

TEST(head_scan, version_505) { EXPECT_EQ(status_of("GET / HTTP/2.0\r\n\r\n"), 505); }

TEST(head_scan, higher_minor_version_is_accepted) {
    // RFC 9110 §2.5: HTTP/1.2 is processed as HTTP/1.1 (request_reader rewrites the digit for Beast).
    head_scan scan;
    std::string_view raw = "GET / HTTP/1.2\r\nHost: a\r\n\r\n";
    ASSERT_EQ(scan.scan(raw, gunicorn_limits), head_scan::result::complete);
    EXPECT_EQ(raw.substr(scan.request_line_end - 8, 8), "HTTP/1.2");
}

TEST(head_scan, field_size_counts_the_crlf_as_gunicorn_does) {
    limits lim{4094, 100, 20};
    EXPECT_EQ(status_of("GET / HTTP/1.1\r\nX: " + std::string(15, 'a') + "\r\n\r\n", lim), 200);  // 18 + 2
    EXPECT_EQ(status_of("GET / HTTP/1.1\r\nX: " + std::string(16, 'a') + "\r\n\r\n", lim), 431);
}

TEST(head_scan, the_empty_line_ending_the_head_is_not_a_field) {
    // With limit_request_field_size 1 no field fits, but a head without fields is still whole and accepted.
    limits lim{4094, 100, 1};
    EXPECT_EQ(status_of("GET / HTTP/1.0\r\n\r\n", lim), 200);
    EXPECT_EQ(status_of("GET / HTTP/1.0\r\nX: a\r\n\r\n", lim), 431);
}

TEST(head_scan, a_dripped_head_is_scanned_once) {
    // Each call resumes where the last stopped, so a client sending one byte at a time costs linear work.
    std::string raw = "GET /" + std::string(4000, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n";
    head_scan scan;
    for (size_t n = 1; n < raw.size(); ++n) {
        ASSERT_EQ(scan.scan(std::string_view(raw).substr(0, n), gunicorn_limits), head_scan::result::need_more);
        // A CR at the end is looked at again once its LF can be checked; nothing else is.
        ASSERT_GE(scan.next + 1, n);
    }
    EXPECT_EQ(scan.scan(raw, gunicorn_limits), head_scan::result::complete);
    EXPECT_EQ(scan.head_end, raw.size());
}

TEST(head_scan, trailer_section_mode_scans_fields_only) {
    head_scan scan;
    scan.request_line_done = true;
    EXPECT_EQ(scan.scan("X-A: 1\r\n\r\n", gunicorn_limits), head_scan::result::complete);
    head_scan folded;
    folded.request_line_done = true;
    EXPECT_THROW(folded.scan("X-A: 1\r\n 2\r\n\r\n", gunicorn_limits), http_error);
}

TEST(head_scan, host_values) {
    // RFC 9110 §7.2 / RFC 3986 §3.2.2.
    for (auto good : {"", "example.com", "example.com:8080", "127.0.0.1", "[::1]", "[::1]:80", "xn--bcher-kva.example",
                      "a_b.example", "example.com:"})
        EXPECT_TRUE(is_host_port(good)) << good;
    for (auto bad : {"exa mple.com", "example.com/x", "user@example.com", "example.com:8o", "[::1", "[::1]x",
                     "example.com?", "exa\"mple"})
        EXPECT_FALSE(is_host_port(bad)) << bad;
}

TEST(head_scan, target_forms) {
    auto line = [](std::string_view l) { return status_of(std::string(l) + "\r\n\r\n"); };
    EXPECT_EQ(line("CONNECT example.com:443 HTTP/1.1"), 200);
    EXPECT_EQ(line("CONNECT [::1]:443 HTTP/1.1"), 200);
    EXPECT_EQ(line("CONNECT example.com HTTP/1.1"), 400);
    EXPECT_EQ(line("CONNECT :443 HTTP/1.1"), 400);
    EXPECT_EQ(line("GET example.com:443 HTTP/1.1"), 400);
    EXPECT_EQ(line("OPTIONS * HTTP/1.1"), 200);
    EXPECT_EQ(line("GET * HTTP/1.1"), 400);
    EXPECT_EQ(line("GET https://example.com/x HTTP/1.1"), 200);
    EXPECT_EQ(line("GET -https://example.com/x HTTP/1.1"), 400);
}

}  // namespace
}  // namespace gcorn::http
