// Gunicorn's server hooks ([hooks] in TOML, --hook NAME=MODULE:FUNCTION): loaded and called through
// gcorn._hooks. Master-side hooks are the only reason the master starts Python besides preload_app (DESIGN §1).
// PRECONDITION for every call: the interpreter runs. Calls never throw: a hook's error is logged.
#pragma once
#include <vector>

#include "config/settings.hpp"
#include "config/tables.hpp"
#include "py/object.hpp"
#include "sys/contract.hpp"

namespace gcorn::hooks {

using config::hook;

bool configured(const config::settings& s, hook h);
// A hook that runs in the master is configured (config::hooks' in_master column).
bool needs_master_python(const config::settings& s);

// Imports the hook functions (GIL held). Throws py::python_error naming a bad module or function.
void configure(const config::settings& s);

// The master-side hooks as callbacks for the arbiter (each takes the GIL it needs).
sys::master_hooks master_side(const config::settings& s);
void master_call(hook h);

// The listening sockets (server.LISTENERS, worker.sockets), in the master and in each worker.
void set_listeners(const std::vector<int>& fds);

// Worker side: become_worker runs post_fork; worker_call runs post_worker_init, worker_int, worker_exit...
// `slot` is the worker's scoreboard slot: worker.notify() (and worker.tmp.notify()) beat it, as in Gunicorn.
void become_worker(int age, sys::worker_slot& slot);
void worker_call(hook h);
// pre_request(environ) / post_request(environ, status, headers) callables, or null when not configured.
py::object pre_request(const config::settings& s);
py::object post_request(const config::settings& s);
// ssl_context(config, default_ssl_context_factory): the ssl.SSLContext the hook returns, checked to be one gcorn can
// serve with; null when no hook is configured. The factory makes the context gcorn's TLS settings describe (certfile,
// keyfile, ca_certs, cert_reqs, ciphers, ssl_version, ALPN http/1.1). Throws py::python_error: unlike the other hooks,
// its failure is the worker's (it cannot serve TLS without the context).
py::object ssl_context(const config::settings& s);

}  // namespace gcorn::hooks
