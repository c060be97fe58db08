// The worker process's entry point, injected into the arbiter by main.cpp: boot (signals, environment,
// interpreter, app) and then the configured worker class's loop.
#pragma once
#include "sys/worker_args.hpp"

namespace gcorn::worker {

// Runs in the forked child; returns the exit code (sys::worker_boot_error / app_load_error on boot failure).
int worker_main(const sys::worker_args& args);

// --check-config: loads the application in this process; returns 0 if it loads.
int check_app(const config::settings& s);

}  // namespace gcorn::worker
