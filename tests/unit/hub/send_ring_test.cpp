#include "hub/send_ring.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "hub/edge_socket.hpp"

// The batched response sends (issue 14): a queued send leaves at the flush, at once while requests are slow, and
// what a full socket does not take is sent by the reactor as the socket drains, in order.
namespace gcorn::hub {
namespace {

using namespace std::chrono_literals;

struct socket_pair {
    int ours = -1, peer = -1;
    socket_pair() {
        int fds[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
        ours = fds[0], peer = fds[1];
    }
    ~socket_pair() {
        if (peer >= 0) ::close(peer);  // `ours` belongs to the test's edge_socket
    }
    std::string read_available() const {
        std::string got;
        char buf[65536];
        for (ssize_t n; (n = ::recv(peer, buf, sizeof buf, MSG_DONTWAIT)) > 0;) got.append(buf, size_t(n));
        return got;
    }
};

// A ring and a connected socket on a reactor; the test is skipped where the kernel refuses io_uring.
class send_ring_test : public ::testing::Test {
protected:
    void SetUp() override {
        ::unsetenv("GCORN_NO_IO_URING");
        ring = send_ring::open();
        if (!ring) GTEST_SKIP() << "io_uring refused here";
    }
    std::shared_ptr<outbox> box(std::string bytes) {
        auto b = std::make_shared<outbox>();
        b->socket = &s, b->bytes = std::move(bytes);
        return b;
    }
    std::unique_ptr<send_ring> ring;
    socket_pair p;
    boost::asio::io_context ioc{1};
    edge_socket s{ioc, p.ours};
};

TEST_F(send_ring_test, a_queued_send_leaves_at_the_flush) {
    auto box = this->box("HTTP/1.1 200 OK\r\n\r\n");
    ASSERT_TRUE(ring->queue(box));
    EXPECT_TRUE(box->in_ring);
    EXPECT_EQ(p.read_available(), "");  // not before the round ends
    ring->flush();
    EXPECT_FALSE(box->in_ring);
    EXPECT_TRUE(box->empty());
    EXPECT_EQ(p.read_available(), "HTTP/1.1 200 OK\r\n\r\n");
    EXPECT_TRUE(ring->idle());
}

TEST_F(send_ring_test, responses_of_slow_requests_are_sent_at_once) {
    for (int i = 0; i < 20; ++i) ring->note_request(5ms);  // the app takes milliseconds: batching only delays
    auto box = this->box("slow");
    ASSERT_TRUE(ring->queue(box));
    EXPECT_FALSE(box->in_ring);
    EXPECT_EQ(p.read_available(), "slow");
    for (int i = 0; i < 40; ++i) ring->note_request(2us);  // fast again: batched again
    box->bytes = "fast", box->sent = 0;
    ASSERT_TRUE(ring->queue(box));
    EXPECT_EQ(p.read_available(), "");
    ring->flush();
    EXPECT_EQ(p.read_available(), "fast");
}

TEST_F(send_ring_test, what_a_full_socket_does_not_take_is_sent_as_it_drains) {
    int small = 4096;
    ASSERT_EQ(::setsockopt(p.ours, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    std::string body;
    for (int i = 0; body.size() < 1'000'000; ++i) body += std::to_string(i) + ",";
    auto box = this->box(body);
    ASSERT_TRUE(ring->queue(box));
    ring->flush();
    EXPECT_FALSE(box->in_ring);
    EXPECT_FALSE(box->empty());  // the socket took a part
    EXPECT_TRUE(box->draining);  // the rest waits for the reactor
    std::string got;
    for (int rounds = 0; got.size() < body.size() && rounds < 100000; ++rounds) {
        got += p.read_available();
        ioc.restart();
        ioc.poll();  // the socket became writable: the drain sends more
    }
    ASSERT_EQ(got.size(), body.size());
    EXPECT_TRUE(got == body) << "bytes out of order";
    EXPECT_TRUE(box->empty());
    EXPECT_FALSE(box->draining);
    EXPECT_EQ(box->error, 0);
}

TEST_F(send_ring_test, a_closed_peer_breaks_the_box_not_the_ring) {
    ::close(std::exchange(p.peer, -1));  // the peer is gone
    auto box = this->box("nobody reads this");
    ASSERT_TRUE(ring->queue(box));
    ring->flush();
    EXPECT_EQ(box->error, EPIPE);
    EXPECT_TRUE(ring->usable());
}

TEST(send_ring, gcorn_no_io_uring_turns_it_off) {
    ::setenv("GCORN_NO_IO_URING", "1", 1);
    EXPECT_EQ(send_ring::open(), nullptr);
    ::unsetenv("GCORN_NO_IO_URING");
}

TEST_F(send_ring_test, a_closed_ring_refuses_sends) {
    ring->close();
    EXPECT_FALSE(ring->usable());
    EXPECT_FALSE(ring->queue(box("late")));
}

}  // namespace
}  // namespace gcorn::hub
