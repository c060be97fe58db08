// Python as gcorn's processes run it (a worker, or the master for preload_app and master hooks): the interpreter
// with sys.path set up, the virtualenv, the hub's primitives, the cooperative stdlib for the async class,
// faulthandler into the error log, the hooks loaded; and the master-side Python that forked workers inherit.
#pragma once
#include <memory>
#include <optional>
#include <stdexcept>

#include "config/settings.hpp"
#include "py/interpreter.hpp"
#include "sys/contract.hpp"
#include "sys/process.hpp"
#include "wsgi/app.hpp"

namespace gcorn::hooks {

// raw_env: the variables set in gcorn's Python processes before the interpreter starts.
void apply_raw_env(const config::settings& s);

// Logs why the app did not load; returns the exit code that says so (sys::app_load_error / worker_boot_error).
int report_load_error(const config::settings& s, const wsgi::load_error& e);

// The set-up failed: what() is the Python traceback, formatted while the interpreter still ran (a python_error
// escaping the constructor would outlive the interpreter it points into).
struct startup_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// An interpreter ready for the app. Throws startup_error if the set-up fails.
class python_runtime {
public:
    explicit python_runtime(const config::settings& s);

private:
    py::interpreter interp_;
};

// Python started in the master: for preload_app (the app imported once, shared copy-on-write by the workers)
// and for master-side server hooks. Workers forked from it inherit the interpreter.
class master_python {
public:
    // Null if the master needs no Python, or on failure (then *exit_code says why, already logged).
    static std::unique_ptr<master_python> start(const config::settings& s, int* exit_code);

    sys::fork_hooks fork_hooks() const;       // the interpreter's fork protocol, for the arbiter
    sys::master_hooks server_hooks() const;   // on_starting ... on_exit
    const wsgi::application* preloaded_app() const { return app_ ? &*app_ : nullptr; }

    explicit master_python(const config::settings& s);  // use start()

private:
    python_runtime runtime_;
    config::settings settings_;
    std::optional<wsgi::application> app_;  // with preload_app
};

// --check-config: loads the application in this process; returns 0 if it loads.
int check_app(const config::settings& s);

}  // namespace gcorn::hooks
