#include "master/arbiter.hpp"

#include <csignal>
#include <unistd.h>

#include <atomic>
#include <vector>

#include <gtest/gtest.h>

// The arbiter's reap-and-respawn policy with an injected worker entry point: each "worker" is a real forked child
// that runs only the lambda given here, so the master's decisions are observed without Python or HTTP.
namespace gcorn::master {
namespace {

struct run_result {
    int exit_code;
    std::vector<int> exited_ages;  // child_exit's age argument, in order
    int forks;
};

run_result run_arbiter(int workers, std::function<int(const sys::worker_args&)> main) {
    config::settings s;
    s.workers = workers;
    s.timeout = 0;  // no heartbeat checks: these children do not beat
    s.graceful_timeout = 5;
    run_result r{0, {}, 0};
    options opt;
    opt.main = std::move(main);
    opt.hooks.pre_fork = [&](pid_t, int) { ++r.forks; };
    opt.hooks.child_exit = [&](pid_t, int age) { r.exited_ages.push_back(age); };
    arbiter a(s, {}, std::move(opt));
    r.exit_code = a.run();
    return r;
}

TEST(arbiter, a_worker_that_cannot_load_the_app_stops_the_master_with_its_code) {
    auto r = run_arbiter(1, [](const sys::worker_args&) { return sys::app_load_error; });
    EXPECT_EQ(r.exit_code, sys::app_load_error);
    EXPECT_EQ(r.forks, 1);  // not respawned
}

TEST(arbiter, workers_dying_before_boot_stop_the_master_after_a_few_tries) {
    auto r = run_arbiter(1, [](const sys::worker_args&) { return 0; });  // exits before slot.booted
    EXPECT_EQ(r.exit_code, sys::worker_boot_error);
    EXPECT_EQ(r.forks, 5);  // no fork storm
}

TEST(arbiter, booted_workers_are_respawned_and_child_exit_gets_their_age) {
    auto r = run_arbiter(1, [](const sys::worker_args& a) {
        a.slot.booted = true;
        if (a.age == 3) ::kill(a.master_pid, SIGTERM);  // the third worker stops the test
        return 0;
    });
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_EQ(r.forks, 3);
    EXPECT_EQ(r.exited_ages, (std::vector<int>{1, 2, 3}));
}

}  // namespace
}  // namespace gcorn::master
