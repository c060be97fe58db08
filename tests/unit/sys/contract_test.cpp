#include "sys/contract.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <set>

#include <gtest/gtest.h>

#include "sys/scoreboard.hpp"

namespace gcorn::sys {
namespace {

TEST(scoreboard, grows_a_block_when_every_slot_is_taken_and_slots_never_move) {
    scoreboard board(2);
    std::set<worker_slot*> taken;
    for (int i = 0; i < 5; ++i) {
        auto& slot = board.take_free();
        slot.pid = 100 + i;
        EXPECT_TRUE(taken.insert(&slot).second);  // a fresh slot each time
    }
    EXPECT_GE(board.capacity(), 5u);
    auto* first = *taken.begin();
    first->pid = 0;  // that worker exited: its slot is reused before any new block
    EXPECT_EQ(&board.take_free(), first);
}

TEST(handover, listeners_and_the_old_master_pass_through_the_environment) {
    auto l = open_listeners({"127.0.0.1:0"}, {16, false, 0});
    ASSERT_EQ(l.size(), 1u);
    export_handover(l, 4242);
    EXPECT_EQ(old_master_pid(), 4242);
    auto inherited = inherited_listeners();
    ASSERT_TRUE(inherited.has_value());
    ASSERT_EQ(inherited->size(), 1u);
    EXPECT_EQ((*inherited)[0].port, l[0].port);
    EXPECT_EQ(std::getenv("GCORN_FD"), nullptr);  // read once: a worker forked later does not adopt them again
    forget_old_master();
    EXPECT_EQ(old_master_pid(), 0);
    (*inherited)[0].fd.release();  // the same fd as l[0]'s: closed once, by l
}

TEST(handover, nothing_inherited_without_the_variables) {
    ::unsetenv("LISTEN_FDS");
    EXPECT_FALSE(inherited_listeners().has_value());
}

}  // namespace
}  // namespace gcorn::sys
