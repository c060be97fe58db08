// The worker process's entry point, injected into the arbiter by main.cpp: boot (signals, environment,
// interpreter, hooks, app) and then the configured worker class's loop.
#pragma once
#include <memory>

#include "master/arbiter.hpp"
#include "sys/process.hpp"
#include "sys/worker_args.hpp"

namespace gcorn::worker {

// Python started in the master: for preload_app (the app imported once, shared copy-on-write by the
// workers) and for master-side server hooks. Workers forked from it inherit the interpreter.
class master_python {
public:
    ~master_python();
    sys::fork_hooks fork_hooks() const;        // the interpreter's fork protocol, for the arbiter
    master::master_hooks server_hooks() const;  // on_starting ... on_exit
    struct impl;
    std::unique_ptr<impl> impl_;
};

// Starts Python in the master if preload_app or a master-side hook needs it; null if not needed or on
// failure (then *exit_code says why: sys::app_load_error / worker_boot_error, already logged).
std::unique_ptr<master_python> start_master_python(const config::settings& s, int* exit_code);

// Runs in the forked child; returns the exit code (sys::worker_boot_error / app_load_error on boot failure).
int worker_main(const sys::worker_args& args, master_python* inherited);

// --check-config: loads the application in this process; returns 0 if it loads.
int check_app(const config::settings& s);

}  // namespace gcorn::worker
