// The arbiter (DESIGN §1): forks and supervises workers, one named handler per signal.
// Never runs request code and never starts Python; the worker's entry point is injected by main.cpp.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "config/settings.hpp"
#include "sys/listener.hpp"
#include "sys/process.hpp"
#include "sys/worker_args.hpp"

namespace gcorn::master {

using worker_main = std::function<int(const sys::worker_args&)>;

class arbiter {
public:
    arbiter(const config::settings& s, const std::vector<sys::listener>& listeners, worker_main main,
            sys::fork_hooks hooks = {});
    ~arbiter();
    // Runs until stopped by a signal or a worker that cannot boot; returns the process exit code.
    int run();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace gcorn::master
