#include "worker/worker.hpp"

#include <csignal>
#include <fcntl.h>
#include <optional>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "config/tables.hpp"
#include "hooks/hooks.hpp"
#include "log/log.hpp"
#include "py/object.hpp"
#include "sys/privileges.hpp"
#include "sys/proctitle.hpp"
#include "sys/systemd.hpp"
#include "worker/drivers.hpp"
#include "worker/inspector.hpp"
#include "worker/transport.hpp"

namespace gcorn::worker {
namespace {

int run_driver(const sys::worker_args& args, const wsgi::application& app, const transport& t) {
    switch (config::worker_kind_of(args.settings)) {
        case config::worker_kind::sync: return run_sync(args, app, t);
        case config::worker_kind::gthread: return run_gthread(args, app, t);
        case config::worker_kind::async: return run_async(args, app, t);
    }
    return sys::worker_boot_error;
}

// reuse_port: this worker's own accept queues instead of the master's shared ones.
std::vector<sys::listener> own_listeners(const sys::worker_args& args) {
    std::vector<sys::listener> own;
    if (args.settings.reuse_port)
        for (auto& l : args.listeners) own.push_back(sys::own_listener(l, args.settings.backlog));
    return own;
}

std::vector<int> listener_fds(const std::vector<sys::listener>& listeners) {
    std::vector<int> fds;
    for (auto& l : listeners) fds.push_back(l.fd.get());
    return fds;
}

// The app is loaded: TLS, the request hooks, post_worker_init, then the driver until the worker stops.
int run_worker_class(const sys::worker_args& shared_args, const wsgi::application& app) {
    auto& s = shared_args.settings;
    std::optional<transport> t;  // TLS certificates load here, so a HUP's fresh workers load them again
    try {
        t.emplace(s);
    } catch (const py::python_error& e) {  // the ssl_context hook
        spdlog::error("Cannot set up TLS: the ssl_context hook failed\n{}", e.traceback());
        return sys::worker_boot_error;
    } catch (const std::exception& e) {
        spdlog::error("Cannot set up TLS: {}", e.what());
        return sys::worker_boot_error;
    }
    shared_args.slot.booted = true;  // a death from here on is not a boot failure
    const_cast<wsgi::application&>(app).set_request_hooks(hooks::pre_request(s), hooks::post_request(s));
    auto own = own_listeners(shared_args);
    sys::worker_args args{s, own.empty() ? shared_args.listeners : own, shared_args.slot, shared_args.age,
                          shared_args.master_pid, shared_args.max_requests};
    if (shared_args.reload_manifest_fd >= 0)  // reload: tell the master what to watch
        py::import("gcorn._reload").attr("write_manifest")({py::integer(shared_args.reload_manifest_fd)});
    if (!s.hooks.empty()) hooks::set_listeners(listener_fds(args.listeners));
    if (hooks::configured(s, hooks::hook::worker_abort)) py::import("gcorn._hooks").attr("install_abort_handler")();
    // Without a hook configured gcorn._hooks has nothing to call: not even imported (a boot's few ms).
    if (!s.hooks.empty()) hooks::worker_call(hooks::hook::post_worker_init);
    inspector stack_dumps(shared_args.inspect_fd, shared_args.slot);
    int rc = run_driver(args, app, *t);
    if (!s.hooks.empty()) hooks::worker_call(hooks::hook::worker_exit);
    return rc;
}

// Loads the app (or reports why it cannot be), then runs the worker class.
int load_and_run(const sys::worker_args& args) {
    std::optional<wsgi::application> app;
    try {
        app.emplace(args.settings);
    } catch (const wsgi::load_error& e) {
        return hooks::report_load_error(args.settings, e);
    }
    return run_worker_class(args, *app);
}

// print() and C-level writes of the app go to the error log file (capture_output).
void capture_output(const config::settings& s) {
    if (!s.capture_output || log::error_log_fd() >= 0 || s.errorlog.empty() || s.errorlog == "-") return;
    int fd = ::open(s.errorlog.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) ::dup2(fd, 1), ::dup2(fd, 2), ::close(fd);
}

// A worker of a master that runs no Python: its own interpreter, then the app.
int boot_own_python(const sys::worker_args& args) {
    std::optional<hooks::python_runtime> runtime;
    try {
        runtime.emplace(args.settings);
    } catch (const hooks::startup_error& e) {
        spdlog::error("Worker failed to boot:\n{}", e.what());
        return sys::worker_boot_error;
    }
    if (!args.settings.hooks.empty()) hooks::become_worker(args.age, args.slot);
    return load_and_run(args);
}

}  // namespace

int worker_main(const sys::worker_args& args, const hooks::master_python* inherited) {
    auto& s = args.settings;
    ::signal(SIGPIPE, SIG_IGN);  // writes use MSG_NOSIGNAL, but sendfile(2) cannot
    sys::systemd::forget();      // only the master talks to systemd
    sys::set_proctitle("gcorn: worker [" + s.app_name() + "]");
    hooks::apply_raw_env(s);
    try {
        sys::drop_privileges(sys::resolve_identity(s.user, s.group, s.initgroups));
    } catch (const std::exception& e) {
        spdlog::error("Cannot switch to user '{}' / group '{}': {}", s.user, s.group, e.what());
        return sys::worker_boot_error;
    }
    capture_output(s);
    if (!inherited) return boot_own_python(args);
    hooks::become_worker(args.age, args.slot);
    auto* preloaded = inherited->preloaded_app();
    return preloaded ? run_worker_class(args, *preloaded) : load_and_run(args);
}

}  // namespace gcorn::worker
