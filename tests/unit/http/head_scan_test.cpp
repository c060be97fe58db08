#include "http/head_scan.hpp"

#include <gtest/gtest.h>

#include "http/errors.hpp"

namespace gcorn::http {
namespace {

int status_of(std::string_view raw, limits lim = {}) {
    head_scan scan;
    try {
        return scan.scan(raw, lim) == head_scan::result::complete ? 200 : 0;
    } catch (const http_error& e) {
        return e.status;
    }
}

TEST(head_scan, accepts_a_simple_head) { EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 200); }

TEST(head_scan, waits_for_the_rest) { EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\n"), 0); }

TEST(head_scan, refuses_bare_lf_and_obs_fold) {
    EXPECT_EQ(status_of("GET / HTTP/1.1\nHost: a\r\n\r\n"), 400);
    EXPECT_EQ(status_of("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n"), 400);
}

TEST(head_scan, limits_answer_414_and_431) {
    EXPECT_EQ(status_of("GET /" + std::string(5000, 'a') + " HTTP/1.1\r\n\r\n"), 414);
    EXPECT_EQ(status_of("GET / HTTP/1.1\r\nX: " + std::string(9000, 'a') + "\r\n\r\n"), 431);
}

TEST(head_scan, version_505) { EXPECT_EQ(status_of("GET / HTTP/2.0\r\n\r\n"), 505); }

}  // namespace
}  // namespace gcorn::http
