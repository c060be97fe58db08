// Gunicorn's server hooks ([hooks] in TOML, --hook NAME=MODULE:FUNCTION): loaded and called through
// gcorn._hooks. Master-side hooks are the only reason the master starts Python (DESIGN §1).
// PRECONDITION for every call: the interpreter runs. Calls never throw: a hook's error is logged.
#pragma once
#include <string>
#include <string_view>

#include "config/settings.hpp"
#include "master/arbiter.hpp"
#include "py/object.hpp"

namespace gcorn::hooks {

bool configured(const config::settings& s, std::string_view name);
// on_starting, on_reload, when_ready, pre_fork, pre_exec, child_exit, nworkers_changed or on_exit is set.
bool needs_master_python(const config::settings& s);

// Imports the hook functions (GIL held). Throws py::python_error naming a bad hook or function.
void configure(const config::settings& s);

// The master-side hooks as callbacks for the arbiter (each takes the GIL it needs).
master::master_hooks master_side(const config::settings& s);
void master_call(const char* name);

// Worker side: become_worker runs post_fork; worker_call runs post_worker_init, worker_int, worker_exit...
void become_worker(int age);
void worker_call(const char* name);
// pre_request(environ) / post_request(environ, status, headers) callables, or null when not configured.
py::object pre_request();
py::object post_request();

}  // namespace gcorn::hooks
