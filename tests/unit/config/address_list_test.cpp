#include "config/address_list.hpp"

#include <stdexcept>

#include <gtest/gtest.h>

using gcorn::config::address_list;

TEST(address_list, addresses_networks_and_any) {
    address_list l({"127.0.0.1", "10.0.0.0/8", "192.168.1.0/25", "fd00::/8", "::1"});
    EXPECT_TRUE(l.contains("127.0.0.1"));
    EXPECT_FALSE(l.contains("127.0.0.2"));
    EXPECT_TRUE(l.contains("10.200.3.4"));
    EXPECT_TRUE(l.contains("192.168.1.127"));
    EXPECT_FALSE(l.contains("192.168.1.128"));
    EXPECT_TRUE(l.contains("fd12::5"));
    EXPECT_TRUE(l.contains("::1"));
    EXPECT_FALSE(l.contains("fe80::1"));
    EXPECT_TRUE(l.contains("::ffff:10.1.2.3"));  // IPv4-mapped
    EXPECT_FALSE(l.contains(""));                // a unix socket peer
    EXPECT_FALSE(l.contains("not-an-address"));
    EXPECT_TRUE(address_list({"*"}).contains("203.0.113.9"));
    EXPECT_TRUE(address_list({"0.0.0.0/0"}).contains("203.0.113.9"));
}

TEST(address_list, refuses_what_is_not_an_address) {
    EXPECT_THROW(address_list({"localhost"}), std::invalid_argument);
    EXPECT_THROW(address_list({"10.0.0.0/33"}), std::invalid_argument);
    EXPECT_THROW(address_list({"10.0.0.0/"}), std::invalid_argument);
    EXPECT_THROW(address_list({"::/129"}), std::invalid_argument);
}
