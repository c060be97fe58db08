// The worker process's entry point, injected into the arbiter by main.cpp: boot (privileges, interpreter, hooks,
// app), then the worker class's driver. Knows nothing of the master (DESIGN §4): only the contract in sys/.
#pragma once
#include "hooks/python_runtime.hpp"
#include "sys/contract.hpp"

namespace gcorn::worker {

// Runs in the forked child; returns the exit code (sys::worker_boot_error / app_load_error on boot failure).
// `inherited`: the master's Python (preload_app, master hooks), or null when the worker starts its own.
int worker_main(const sys::worker_args& args, const hooks::master_python* inherited);

}  // namespace gcorn::worker
