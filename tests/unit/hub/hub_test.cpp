#include "hub/hub.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <gtest/gtest.h>

#include "hub/deadline_wait.hpp"
#include "hub/job.hpp"
#include "hub/recycler.hpp"
#include "py/interpreter.hpp"
#include "py/native.hpp"
#include "py/object.hpp"

// The hub with an embedded interpreter: jobs in greenlets, waits that race their deadlines, tokens, kills and
// thrown exceptions (DESIGN §3). Each test runs the hub until it has no work left; hub::run() then kills what is
// still parked, as a stopping worker does.
namespace gcorn::hub {
namespace {

namespace net = boost::asio;
using namespace std::chrono_literals;

class hub_test : public ::testing::Test {
protected:
    static void SetUpTestSuite() { interp_ = new py::interpreter({}); }
    static void TearDownTestSuite() {}  // the interpreter lives until exit: greenlet cannot be re-initialised

    net::io_context ioc{1};
    static py::interpreter* interp_;
};
py::interpreter* hub_test::interp_ = nullptr;

// A pipe whose read end a greenlet can wait on.
// A connected stream socket pair: `r` is the reader's (an edge_socket takes and closes it), `w` the peer's.
struct pipe_pair {
    int r = -1, w = -1;
    pipe_pair() {
        int fds[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
        r = fds[0], w = fds[1];
    }
    ~pipe_pair() { ::close(w); }
    void put() { EXPECT_EQ(::write(w, "x", 1), 1); }
    // Reads what is there; true if the read drained it (as the reactor's readers note it).
    bool take() {
        char buf[64];
        return ::recv(r, buf, sizeof buf, MSG_DONTWAIT) < ssize_t(sizeof buf);
    }
};

using known = edge_socket::known;
constexpr auto wait_read = edge_socket::wait_type::wait_read;

TEST_F(hub_test, jobs_run_in_greenlets_and_pooled_greenlets_are_reused) {
    hub h(ioc);
    std::vector<uint64_t> tokens;
    size_t most_alive = 0;
    // One after another: each job ends before the next is spawned, so one pooled greenlet serves them all.
    std::function<void(int)> chain = [&](int left) {
        h.spawn([&, left] {
            EXPECT_TRUE(h.in_child());
            tokens.push_back(h.current_token());
            most_alive = std::max(most_alive, h.live_greenlets());
            if (left > 1) net::post(ioc, [&, left] { chain(left - 1); });
        });
    };
    chain(50);
    h.run();
    ASSERT_EQ(tokens.size(), 50u);
    for (size_t i = 1; i < tokens.size(); ++i) EXPECT_GT(tokens[i], tokens[i - 1]);  // never reused
    EXPECT_EQ(most_alive, 1u);
}

TEST_F(hub_test, sleepers_wake_in_deadline_order) {
    hub h(ioc);
    std::string order;
    auto now = clock::now();
    h.spawn([&] { h.sleep(now + 30ms), order += 'b'; });
    h.spawn([&] { h.sleep(now + 10ms), order += 'a'; });
    h.spawn([&] { h.yield(), order += '0'; });
    h.run();
    EXPECT_EQ(order, "0ab");
}

TEST_F(hub_test, fd_wait_is_ready_once_data_arrives) {
    hub h(ioc);
    pipe_pair p;
    edge_socket d(ioc, p.r);
    woke got = woke::cancelled;
    h.spawn([&] { got = h.wait(d, wait_read, known::fresh, clock::now() + 10s); });
    net::steady_timer later(ioc, 20ms);
    later.async_wait([&](auto) { p.put(); });
    h.run();
    EXPECT_EQ(got, woke::ready);
}

TEST_F(hub_test, fd_wait_times_out_and_its_late_half_is_dropped) {
    hub h(ioc);
    pipe_pair p;
    edge_socket d(ioc, p.r);
    int resumed = 0;
    woke first = woke::ready;
    h.spawn([&] {
        first = h.wait(d, wait_read, known::fresh, clock::now() + 10ms);
        ++resumed;
        p.put();                        // the timed-out wait's socket half must not resume us...
        h.sleep(clock::now() + 30ms);   // ...while we wait for something else
        ++resumed;
    });
    h.run();
    EXPECT_EQ(first, woke::timeout);
    EXPECT_EQ(resumed, 2);
}

// Edge-triggered waits must not lose an edge the reactor took while nobody waited (issue 14: no re-arm per wait).
// The byte arrives and the reactor runs (a sleep) before the wait starts: a `drained` wait must see it (its check
// peeks), and so must a re-arming one; neither may sleep until its 10 s deadline.
TEST_F(hub_test, a_wait_after_the_reactor_took_the_edge_still_sees_the_input) {
    for (known k : {known::drained, known::nothing}) {
        hub h(ioc);
        pipe_pair p;
        edge_socket d(ioc, p.r);
        woke got = woke::cancelled;
        h.spawn([&] {
            p.put();
            h.sleep(clock::now() + 20ms);  // the reactor runs: epoll reports the byte, no wait is queued
            got = h.wait(d, wait_read, k, clock::now() + 10s);
        });
        h.run();
        ioc.restart();
        EXPECT_EQ(got, woke::ready) << int(k);
    }
}

// The steady state of a keep-alive connection: a read drains the socket, the next wait queues with no check, and
// the next byte wakes it; then the next read drains again, and so on.
TEST_F(hub_test, drained_waits_wake_at_each_new_input) {
    hub h(ioc);
    pipe_pair p;
    edge_socket d(ioc, p.r);
    int woken = 0;
    h.spawn([&] {
        for (int i = 0; i < 3; ++i) {
            if (h.wait(d, wait_read, d.input(), clock::now() + 10s) != woke::ready) return;
            ++woken;
            d.note_read(p.take());
        }
    });
    net::steady_timer t1(ioc, 10ms), t2(ioc, 20ms), t3(ioc, 30ms);
    for (auto* t : {&t1, &t2, &t3}) t->async_wait([&](auto) { p.put(); });
    h.run();
    EXPECT_EQ(woken, 3);
}

TEST_F(hub_test, a_wakeup_before_the_wait_is_kept_and_a_finished_token_is_ignored) {
    hub h(ioc);
    uint64_t sleeper = 0;
    woke got = woke::timeout;
    h.spawn([&] {
        sleeper = h.current_token();
        h.wakeup(sleeper);                       // arrives while the job is elsewhere...
        h.yield();
        got = h.wait_wakeup(clock::now() + 10s);  // ...and is kept for its next wait_wakeup
    });
    h.run();
    EXPECT_EQ(got, woke::ready);
    h.wakeup(sleeper);  // the job is over: nothing to wake, nothing resumed
    ioc.restart();
    ioc.run();
}

// A job's token names that job only: once it has ended, a wakeup or throw_later sent to it does not reach the next
// job, though that one runs on the same pooled greenlet and in the same slot of the hub's job table.
TEST_F(hub_test, an_ended_jobs_token_does_not_reach_the_job_that_reuses_its_slot) {
    hub h(ioc);
    py::object error_type = py::import("builtins").attr("ValueError");
    uint64_t first = 0, second = 0;
    woke second_woke = woke::ready;
    std::string second_saw = "nothing";
    h.spawn([&] { first = h.current_token(); });
    net::post(ioc, [&] {
        h.spawn([&] {
            second = h.current_token();
            h.wakeup(first);
            h.throw_later(first, clock::now(), error_type({py::str("for the first")}));
            try {
                second_woke = h.wait_wakeup(clock::now() + 100ms);
            } catch (const py::python_error& e) {
                second_saw = e.what();
            }
        });
    });
    h.run();
    EXPECT_NE(first, second);
    EXPECT_EQ(hub::slot_of(first), hub::slot_of(second));  // the case this is about
    EXPECT_EQ(second_woke, woke::timeout);
    EXPECT_EQ(second_saw, "nothing");
}

// Greenlets that keep yielding (more of them than the hub drains in one round) do not keep the reactor from being
// polled: a sleeper's timer still fires while they are busy. The loop skips the polls of a round's drain only when
// that round's run_one() polled; otherwise the yields' handlers would always be ahead of the reactor's turn.
TEST_F(hub_test, greenlets_that_keep_yielding_do_not_starve_the_reactor) {
    hub h(ioc);
    bool woke = false;
    int busy = 0, most_rounds = 0;
    for (int i = 0; i < 200; ++i)
        h.spawn([&] {
            ++busy;
            int rounds = 0;
            while (!woke && ++rounds < 3000) h.yield();  // bounded: a starved reactor fails the test, not hangs it
            most_rounds = std::max(most_rounds, rounds);
            --busy;
        });
    bool woke_while_busy = false;
    h.spawn([&] {
        h.sleep(clock::now() + 20ms);
        woke = true;
        woke_while_busy = busy > 0;
    });
    h.run();
    EXPECT_TRUE(woke);
    EXPECT_TRUE(woke_while_busy) << "the timer fired only once the yielders gave up (" << most_rounds << " rounds)";
}

TEST_F(hub_test, a_parked_greenlet_is_killed_at_stop_and_unwinds_through_raii) {
    hub h(ioc);
    bool unwound = false, kill_seen = false, second_wait_refused = false;
    h.spawn([&] {
        struct guard {
            bool& flag;
            ~guard() { flag = true; }
        } g{unwound};
        try {
            h.wait_wakeup(no_deadline);  // nothing will wake it: run() ends with it parked
        } catch (const killed&) {
            kill_seen = true;
            try {
                h.sleep(clock::now() + 1s);  // an app swallowing the kill cannot park again (sticky)
            } catch (const killed&) {
                second_wait_refused = true;
            }
            throw;
        }
    });
    h.run();
    EXPECT_TRUE(kill_seen);
    EXPECT_TRUE(second_wait_refused);
    EXPECT_TRUE(unwound);
}

TEST_F(hub_test, throw_later_raises_in_the_parked_job_and_cancel_throw_prevents_it) {
    hub h(ioc);
    std::string seen;
    py::object error_type = py::import("builtins").attr("ValueError");
    h.spawn([&] {
        auto me = h.current_token();
        h.throw_later(me, clock::now() + 10ms, error_type({py::str("deadline")}));
        try {
            h.sleep(clock::now() + 10s);
            seen = "slept";
        } catch (const py::python_error& e) {
            seen = e.what();
        }
        auto id = h.throw_later(me, clock::now() + 10ms, error_type({py::str("late")}));
        h.cancel_throw(id);
        h.sleep(clock::now() + 30ms);  // not interrupted
        seen += "|done";
    });
    h.run();
    EXPECT_NE(seen.find("deadline"), std::string::npos) << seen;
    EXPECT_NE(seen.find("|done"), std::string::npos) << seen;
}

TEST_F(hub_test, run_in_threadpool_parks_only_its_greenlet) {
    hub h(ioc, 2);
    std::string order;
    h.spawn([&] {
        h.run_in_threadpool([] { ::usleep(30'000); });
        order += 'p';
    });
    h.spawn([&] { order += 'o'; });  // runs while the first one's call is on the pool
    h.run();
    EXPECT_EQ(order, "op");
}

// A job is stored inline up to 64 bytes and on the heap past that; moving it moves the callable (a shared_ptr it
// holds keeps one owner), and whatever owns it last destroys it exactly once.
TEST(job_fn, holds_small_and_large_callables_and_destroys_each_once) {
    auto owner = std::make_shared<int>(0);
    struct big {
        std::shared_ptr<int> p;
        char pad[100] = {};
        void operator()() const { ++*p; }
    };
    {
        job_fn small = [p = owner] { ++*p; };
        job_fn large = big{owner};
        EXPECT_EQ(owner.use_count(), 3);
        job_fn moved = std::move(small);
        job_fn moved_large = std::move(large);
        EXPECT_FALSE(small);
        EXPECT_FALSE(large);
        EXPECT_EQ(owner.use_count(), 3);  // moved, not copied
        moved();
        moved_large();
        EXPECT_EQ(*owner, 2);
        moved = std::move(moved_large);  // the small one is destroyed here, the large one changes hands
        EXPECT_EQ(owner.use_count(), 2);
        moved();
        EXPECT_EQ(*owner, 3);
    }
    EXPECT_EQ(owner.use_count(), 1);
}

// A wait's block goes back to its size class and the next wait of that class reuses it; past `keep` blocks, or
// past the largest class, the heap takes them.
TEST(recycler, a_freed_block_is_reused_by_the_next_allocation_of_its_class) {
    void* a = recycler::allocate(100);
    recycler::deallocate(a, 100);
    EXPECT_EQ(recycler::allocate(120), a);  // same class (128)
    void* small = recycler::allocate(64);
    EXPECT_NE(small, a);
    recycler::deallocate(small, 64);
    recycler::deallocate(a, 120);
    EXPECT_EQ(recycler::allocate(16), small);
    EXPECT_EQ(recycler::allocate(128), a);
    std::vector<void*> many;
    for (unsigned i = 0; i < recycler::detail::keep + 10; ++i) many.push_back(recycler::allocate(200));
    for (void* p : many) recycler::deallocate(p, 200);
    EXPECT_EQ(recycler::detail::mine().count[2], recycler::detail::keep);
    void* big = recycler::allocate(1000);  // no class: plain heap, never kept
    recycler::deallocate(big, 1000);
    EXPECT_EQ(recycler::detail::mine().count[2], recycler::detail::keep);
    recycler::deallocate(small, 16), recycler::deallocate(a, 128);
}

// A wait's completion and a throw_later that land in the same batch switch into the greenlet once: the exception is
// raised in that wait, and the next wait is not ended early by a second, stale switch (it would return cancelled).
TEST_F(hub_test, a_completion_and_a_throw_in_one_batch_resume_the_greenlet_once) {
    hub h(ioc);
    pipe_pair p, q;
    edge_socket d(ioc, p.r), e(ioc, q.r);
    py::object error_type = py::import("builtins").attr("ValueError");
    std::string seen;
    woke next = woke::ready;
    h.spawn([&] {
        // Both become ready while the job waits: the readiness at the reactor's next epoll_wait, and the throw's
        // timer, already due then. The hub runs every handler that came with a wait before it switches.
        h.throw_later(h.current_token(), clock::now(), error_type({py::str("thrown")}));
        p.put();
        try {
            h.wait(d, wait_read, known::nothing, clock::now() + 10s);
            seen = "woke";
        } catch (const py::python_error& err) {
            seen = err.what();
        }
        next = h.wait(e, wait_read, known::fresh, clock::now() + 50ms);
    });
    h.run();
    EXPECT_NE(seen.find("thrown"), std::string::npos) << seen;
    EXPECT_EQ(next, woke::timeout);
}

// Jobs spawned in one batch (a reactor's handlers after one epoll_wait) run in order, and a job that ends takes
// the next one queued on its own greenlet, with no switch; a job that parks leaves the next to another greenlet.
// Tokens stay with their jobs: a throw_later and a wakeup sent before a job began reach it where it runs.
TEST_F(hub_test, jobs_queued_together_run_in_order_on_as_few_greenlets_and_keep_their_tokens) {
    hub h(ioc);
    auto getcurrent = py::import("greenlet").attr("getcurrent");
    py::object error_type = py::import("builtins").attr("ValueError");
    std::vector<int> order;
    std::vector<py::object> greenlets;
    uint64_t second = 0, fourth = 0;
    std::string second_saw;
    woke fourth_woke = woke::timeout;
    auto started = [&](int n) { order.push_back(n), greenlets.push_back(getcurrent()); };
    net::post(ioc, [&] {
        h.spawn([&] {
            started(1);
            h.throw_later(second, clock::now(), error_type({py::str("for the second")}));
            h.wakeup(fourth);
        });
        second = h.spawn([&] {
            started(2);  // on the first job's greenlet
            try {
                h.sleep(clock::now() + 10s);
                second_saw = "slept";
            } catch (const py::python_error& e) {
                second_saw = e.what();
            }
        });
        h.spawn([&] { started(3); });  // the first greenlet is parked in the second job: a new one
        fourth = h.spawn([&] {
            started(4);  // on the third job's greenlet
            fourth_woke = h.wait_wakeup(clock::now() + 10s);
        });
    });
    h.run();
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 4}));
    ASSERT_EQ(greenlets.size(), 4u);
    EXPECT_TRUE(greenlets[1].is(greenlets[0]));
    EXPECT_FALSE(greenlets[2].is(greenlets[0]));
    EXPECT_TRUE(greenlets[3].is(greenlets[2]));
    EXPECT_NE(second_saw.find("for the second"), std::string::npos) << second_saw;
    EXPECT_EQ(fourth_woke, woke::ready);
}

// A native function reading an argument the caller did not pass raises TypeError in the caller (not a read past the
// interpreter's argument vector); keywords are found by name and are not positional arguments.
TEST_F(hub_test, native_functions_check_their_arguments) {
    int ctx = 0;
    auto second = py::native_function([](void*, const py::call_args& a) { return a[1]; }, &ctx);
    EXPECT_EQ(py::to_integer(second({py::integer(1), py::integer(2)})), 2);
    try {
        second({py::integer(1)});
        ADD_FAILURE() << "no exception";
    } catch (const py::python_error& e) {
        EXPECT_NE(std::string(e.what()).find("TypeError"), std::string::npos) << e.what();
    }
    auto keyword = py::native_function(
        [](void*, const py::call_args& a) { return a.keyword(py::str("k")) ? a.keyword(py::str("k")) : py::none(); },
        &ctx);
    auto call_kw = py::import("builtins").attr("eval")({py::str("lambda f: (f(k=5), f(1))"), py::dict()});
    auto got = call_kw({keyword});
    EXPECT_EQ(py::to_integer(py::item(got, 0)), 5);
    EXPECT_TRUE(py::is_none(py::item(got, 1)));
}

// deadline_wait without a hub: the reactor's idle keep-alive wait.
TEST(deadline_wait, the_first_half_wins_and_settle_ends_it_from_outside) {
    net::io_context ioc;
    deadline_wait w(ioc.get_executor());
    std::vector<woke> results;
    w.start_timer(clock::now() + 5ms, [&](woke why) { results.push_back(why); });
    EXPECT_TRUE(w.active());
    ioc.run();
    ASSERT_EQ(results, std::vector<woke>{woke::timeout});
    EXPECT_FALSE(w.active());

    ioc.restart();
    w.start([&](auto handler) { net::post(ioc, [h = std::move(handler)]() mutable { h({}); }); }, clock::now() + 1h,
            [&](woke why) { results.push_back(why); });
    ioc.run();  // the operation wins; the cancelled timer's completion is dropped
    ASSERT_EQ(results.size(), 2u);
    EXPECT_EQ(results[1], woke::ready);

    ioc.restart();
    w.start_timer(clock::now() + 1h, [&](woke why) { results.push_back(why); });
    EXPECT_TRUE(w.settle());   // ended from outside: the caller resumes the waiter itself
    EXPECT_FALSE(w.settle());  // once
    ioc.run();
    EXPECT_EQ(results.size(), 2u);
}

}  // namespace
}  // namespace gcorn::hub
