// The worker process's entry point, injected into the arbiter by main.cpp: boot (signals, environment,
// interpreter, app) and then the configured worker class's loop.
#pragma once
#include <memory>

#include "sys/process.hpp"
#include "sys/worker_args.hpp"

namespace gcorn::worker {

// An interpreter with the application already imported in the master (preload_app). Workers forked from
// it share the imported code copy-on-write.
class preloaded_app {
public:
    // Throws wsgi::load_error (reported by report_load_error).
    explicit preloaded_app(const config::settings& s);
    ~preloaded_app();
    sys::fork_hooks fork_hooks() const;  // the interpreter's fork protocol, for the arbiter
    struct impl;
    std::unique_ptr<impl> impl_;
};

// Runs in the forked child; returns the exit code (sys::worker_boot_error / app_load_error on boot failure).
// `preloaded` is the master's app under preload_app, else null (the worker imports the app itself).
int worker_main(const sys::worker_args& args, preloaded_app* preloaded);

// --check-config: loads the application in this process; returns 0 if it loads.
int check_app(const config::settings& s);

// Loads the app in the master for preload_app; returns null and logs why on failure (exit with *code).
std::unique_ptr<preloaded_app> preload(const config::settings& s, int* code);

}  // namespace gcorn::worker
