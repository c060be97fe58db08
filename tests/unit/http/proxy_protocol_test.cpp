#include "http/proxy_protocol.hpp"

#include <gtest/gtest.h>

namespace gcorn::http {
namespace {

using state = proxy_scan::state;

std::string v2(unsigned char ver_cmd, unsigned char fam, std::string body) {
    std::string h("\r\n\r\n\0\r\nQUIT\n", 12);
    h += char(ver_cmd);
    h += char(fam);
    h += char(body.size() >> 8);
    h += char(body.size() & 0xFF);
    return h + body;
}

std::string inet_body(std::string tlvs = "") {
    // 192.0.2.1:56324 -> 198.51.100.1:443
    return std::string("\xC0\x00\x02\x01\xC6\x33\x64\x01\xDC\x04\x01\xBB", 12) + tlvs;
}

TEST(proxy_protocol, v1_tcp4) {
    std::string raw = "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\nGET / HTTP/1.1\r\n";
    auto r = scan_proxy_header(raw);
    ASSERT_EQ(r.result, state::complete);
    EXPECT_EQ(r.length, raw.find("GET"));
    EXPECT_EQ(r.header.version, 1);
    EXPECT_FALSE(r.header.local);
    EXPECT_EQ(r.header.source_addr, "192.0.2.1");
    EXPECT_EQ(r.header.source_port, 56324);
    EXPECT_EQ(r.header.dest_addr, "198.51.100.1");
    EXPECT_EQ(r.header.dest_port, 443);
}

TEST(proxy_protocol, v1_tcp6_is_written_canonically) {
    auto r = scan_proxy_header("PROXY TCP6 2001:db8:0:0:0:0:0:1 ::1 1 65535\r\n");
    ASSERT_EQ(r.result, state::complete);
    EXPECT_EQ(r.header.source_addr, "2001:db8::1");
    EXPECT_EQ(r.header.dest_port, 65535);
}

TEST(proxy_protocol, v1_unknown_keeps_the_socket_addresses) {
    auto r = scan_proxy_header("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n");
    ASSERT_EQ(r.result, state::complete);
    EXPECT_TRUE(r.header.local);
}

TEST(proxy_protocol, v1_refuses_malformed_lines) {
    for (std::string_view bad : {
             "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\n",       // bare LF
             "PROXY TCP4 192.0.2.1  198.51.100.1 56324 443\r\n",    // double space
             "PROXY TCP4 ::1 198.51.100.1 56324 443\r\n",            // family mismatch
             "PROXY TCP4 192.0.2.1 198.51.100.1 65536 443\r\n",     // port out of range
             "PROXY TCP4 192.0.2.1 198.51.100.1 0443 443\r\n",      // leading zero
             "PROXY TCP4 192.0.2.1 198.51.100.1 -1 443\r\n",        // sign
             "PROXY UDP4 192.0.2.1 198.51.100.1 1 2\r\n",           // protocol
             "PROXY TCP4 192.0.2.1 198.51.100.1 1\r\n",             // missing field
         })
        EXPECT_EQ(scan_proxy_header(bad).result, state::invalid) << bad;
}

TEST(proxy_protocol, v1_waits_for_the_line_but_not_beyond_its_limit) {
    EXPECT_EQ(scan_proxy_header("PRO").result, state::partial);
    EXPECT_EQ(scan_proxy_header("PROXY TCP4 192.0.2.1").result, state::partial);
    EXPECT_EQ(scan_proxy_header("PROXY " + std::string(proxy_v1_max, 'a')).result, state::invalid);
}

TEST(proxy_protocol, anything_else_is_not_a_header) {
    EXPECT_EQ(scan_proxy_header("GET / HTTP/1.1\r\n").result, state::invalid);
    EXPECT_EQ(scan_proxy_header("PROPFIND / HTTP/1.1\r\n").result, state::invalid);
    EXPECT_EQ(scan_proxy_header("\x16\x03\x01").result, state::invalid);  // a TLS ClientHello
    EXPECT_EQ(scan_proxy_header("").result, state::partial);
}

TEST(proxy_protocol, v2_inet) {
    std::string raw = v2(0x21, 0x11, inet_body()) + "GET";
    auto r = scan_proxy_header(raw);
    ASSERT_EQ(r.result, state::complete);
    EXPECT_EQ(r.length, raw.size() - 3);
    EXPECT_EQ(r.header.version, 2);
    EXPECT_EQ(r.header.source_addr, "192.0.2.1");
    EXPECT_EQ(r.header.source_port, 56324);
    EXPECT_EQ(r.header.dest_port, 443);
    EXPECT_FALSE(r.header.tls);
}

TEST(proxy_protocol, v2_inet6) {
    std::string a(16, '\0'), b(16, '\0');
    a[0] = '\x20', a[1] = '\x01', a[2] = '\x0d', a[3] = '\xb8', a[15] = 1;
    b[15] = 1;
    auto r = scan_proxy_header(v2(0x21, 0x21, a + b + std::string("\x00\x50\x01\xBB", 4)));
    ASSERT_EQ(r.result, state::complete);
    EXPECT_EQ(r.header.source_addr, "2001:db8::1");
    EXPECT_EQ(r.header.dest_addr, "::1");
    EXPECT_EQ(r.header.source_port, 80);
}

TEST(proxy_protocol, v2_ssl_tlv_marks_tls) {
    // PP2_TYPE_ALPN "h2", then PP2_TYPE_SSL with PP2_CLIENT_SSL and verify = 0.
    std::string tlvs = std::string("\x01\x00\x02h2", 5) + std::string("\x20\x00\x05\x01\x00\x00\x00\x00", 8);
    auto r = scan_proxy_header(v2(0x21, 0x11, inet_body(tlvs)));
    ASSERT_EQ(r.result, state::complete);
    EXPECT_TRUE(r.header.tls);
}

TEST(proxy_protocol, v2_local_and_unspec) {
    EXPECT_TRUE(scan_proxy_header(v2(0x20, 0x00, "")).header.local);
    EXPECT_TRUE(scan_proxy_header(v2(0x21, 0x00, "")).header.local);
    EXPECT_TRUE(scan_proxy_header(v2(0x21, 0x31, std::string(216, '\0'))).header.local);
}

TEST(proxy_protocol, v2_refuses_bad_versions_commands_and_lengths) {
    EXPECT_EQ(scan_proxy_header(v2(0x11, 0x11, inet_body())).result, state::invalid);  // version 1 in v2 form
    EXPECT_EQ(scan_proxy_header(v2(0x22, 0x11, inet_body())).result, state::invalid);  // command 2
    EXPECT_EQ(scan_proxy_header(v2(0x21, 0x12, inet_body())).result, state::invalid);  // DGRAM
    EXPECT_EQ(scan_proxy_header(v2(0x21, 0x11, "\x01\x02")).result, state::invalid);   // short address block
    EXPECT_EQ(scan_proxy_header(v2(0x21, 0x11, inet_body("\x20\x00"))).result, state::invalid);  // truncated TLV
}

TEST(proxy_protocol, v2_waits_for_its_length) {
    std::string raw = v2(0x21, 0x11, inet_body());
    for (size_t n = 1; n < raw.size(); ++n) EXPECT_EQ(scan_proxy_header(raw.substr(0, n)).result, state::partial) << n;
}


}  // namespace
}  // namespace gcorn::http
