// What the master hands a freshly forked worker: the contract between master/ and worker/.
#pragma once
#include <vector>

#include "config/settings.hpp"
#include "sys/listener.hpp"
#include "sys/scoreboard.hpp"

namespace gcorn::sys {

struct worker_args {
    const config::settings& settings;
    const std::vector<listener>& listeners;
    worker_slot& slot;
    int age;             // 1 for the first worker, +1 for each one spawned after
    pid_t master_pid;
    unsigned long max_requests;  // max_requests plus this worker's jitter; 0 = unlimited
};

}  // namespace gcorn::sys
