#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <optional>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "log/log.hpp"
#include "py/interpreter.hpp"
#include "sys/privileges.hpp"
#include "sys/proctitle.hpp"
#include "sys/process.hpp"
#include "hooks/hooks.hpp"
#include "hub/primitives.hpp"
#include "py/object.hpp"
#include "worker/async_worker.hpp"
#include "worker/gthread_worker.hpp"
#include "worker/sync_worker.hpp"
#include "worker/transport.hpp"
#include "worker/worker.hpp"

namespace gcorn::worker {
namespace {

// sys.path: the working directory (as Gunicorn), --pythonpath, then gcorn's own package.
std::vector<std::string> python_paths(const config::settings& s) {
    std::vector<std::string> paths;
    char cwd[4096];
    if (::getcwd(cwd, sizeof cwd)) paths.emplace_back(cwd);
    for (auto& p : s.pythonpath) paths.push_back(p);
    paths.push_back(py::gcorn_python_dir());
    return paths;
}

void apply_raw_env(const config::settings& s) {
    for (auto& kv : s.raw_env) {
        auto eq = kv.find('=');
        ::setenv(kv.substr(0, eq).c_str(), kv.substr(eq + 1).c_str(), 1);
    }
}

int report_load_error(const config::settings& s, const wsgi::load_error& e) {
    spdlog::error("Failed to load application '{}': {}", s.wsgi_app, e.what());
    if (!e.traceback.empty()) spdlog::error("{}", e.traceback);
    return e.app_error ? sys::app_load_error : sys::worker_boot_error;
}

// As Gunicorn: --threads > 1 with the default sync class means gthread.
bool is_gthread(const config::settings& s) {
    return s.worker_class == "gthread" || (s.worker_class == "sync" && s.threads > 1);
}

bool is_async(const config::settings& s) {
    return s.worker_class == "async" || s.worker_class == "gevent" || s.worker_class == "eventlet";
}

// After the interpreter starts and before the app is imported: the hub's primitives, the cooperative
// stdlib for the async worker, and Python tracebacks on fatal signals (SIGABRT from a timeout kill).
// --virtualenv: its site-packages after --pythonpath, with .pth files processed (site.addsitedir), so an app
// with a venv of pure-Python packages runs on the system interpreter.
void add_virtualenv(const config::settings& s) {
    if (s.virtualenv.empty()) return;
    auto site = s.virtualenv + "/lib/python3.11/site-packages";
    py::import("site").attr("addsitedir")({py::str(site)});
}

void prepare_python(const config::settings& s) {
    add_virtualenv(s);
    hub::install_primitives();
    if (is_async(s) && s.monkey_patch) py::import("gcorn.monkey").attr("patch_all")();
    int fd = 2;
    if (!s.errorlog.empty() && s.errorlog != "-")
        fd = ::open(s.errorlog.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) py::import("faulthandler").attr("enable")({py::integer(fd)});
}

// An interpreter ready for the app: sys.path set up, prepare_python run, hooks loaded.
struct python_runtime {
    py::interpreter interp;
    explicit python_runtime(const config::settings& s) : interp(python_paths(s)) {
        prepare_python(s);
        if (!s.hooks.empty()) hooks::configure(s);
    }
};

void attach_request_hooks(const config::settings& s, const wsgi::application& app) {
    auto& a = const_cast<wsgi::application&>(app);  // set once, before the first request
    a.set_request_hooks(hooks::configured(s, "pre_request") ? hooks::pre_request() : py::object(),
                        hooks::configured(s, "post_request") ? hooks::post_request() : py::object());
}

int run_worker_class(const sys::worker_args& shared_args, const wsgi::application& app) {
    std::optional<transport> t;  // TLS certificates load here, so a HUP's fresh workers load them again
    try {
        t.emplace(shared_args.settings);
    } catch (const std::exception& e) {
        spdlog::error("Cannot set up TLS: {}", e.what());
        return sys::worker_boot_error;
    }
    shared_args.slot.booted = true;  // a death from here on is not a boot failure
    attach_request_hooks(shared_args.settings, app);
    // reuse_port: this worker's own accept queues instead of the master's shared ones.
    std::vector<sys::listener> own;
    if (shared_args.settings.reuse_port)
        for (auto& l : shared_args.listeners) own.push_back(sys::own_listener(l, shared_args.settings.backlog));
    sys::worker_args args{shared_args.settings, own.empty() ? shared_args.listeners : own, shared_args.slot,
                          shared_args.age, shared_args.master_pid, shared_args.max_requests};
    if (hooks::configured(args.settings, "worker_abort")) py::import("gcorn._hooks").attr("install_abort_handler")();
    hooks::worker_call("post_worker_init");
    int rc = is_async(args.settings)     ? run_async(args, app, *t)
             : is_gthread(args.settings) ? run_gthread(args, app, *t)
                                         : run_sync(args, app, *t);
    hooks::worker_call("worker_exit");
    return rc;
}

// Loads the app (or reports why it cannot be), then runs the worker class.
int load_and_run(const sys::worker_args& args) {
    std::optional<wsgi::application> app;
    try {
        app.emplace(args.settings);
    } catch (const wsgi::load_error& e) {
        return report_load_error(args.settings, e);
    }
    return run_worker_class(args, *app);
}


}  // namespace

struct master_python::impl {
    python_runtime runtime;
    std::optional<wsgi::application> app;  // with preload_app
    config::settings settings;
    impl(const config::settings& s) : runtime(s), settings(s) {
        if (s.preload_app) app.emplace(s);
    }
};

master_python::~master_python() = default;

sys::fork_hooks master_python::fork_hooks() const {
    return {py::before_fork, py::after_fork_parent, py::after_fork_child};
}

master::master_hooks master_python::server_hooks() const { return hooks::master_side(impl_->settings); }

std::unique_ptr<master_python> start_master_python(const config::settings& s, int* code) {
    if (!s.preload_app && !hooks::needs_master_python(s)) return nullptr;
    apply_raw_env(s);
    auto mp = std::make_unique<master_python>();
    try {
        mp->impl_ = std::make_unique<master_python::impl>(s);
    } catch (const wsgi::load_error& e) {
        *code = report_load_error(s, e);
        return nullptr;
    } catch (const py::python_error& e) {
        spdlog::error("Cannot start Python in the master:\n{}", e.traceback());
        *code = sys::worker_boot_error;
        return nullptr;
    }
    hooks::master_call("on_starting");
    return mp;
}

int worker_main(const sys::worker_args& args, master_python* inherited) {
    auto& s = args.settings;
    ::signal(SIGPIPE, SIG_IGN);  // writes use MSG_NOSIGNAL, but sendfile(2) cannot
    sys::set_proctitle("gcorn: worker [" + (s.proc_name.empty() ? s.wsgi_app : s.proc_name) + "]");
    apply_raw_env(s);
    try {
        sys::drop_privileges(sys::resolve_identity(s.user, s.group, s.initgroups));
    } catch (const std::exception& e) {
        spdlog::error("Cannot switch to user '{}' / group '{}': {}", s.user, s.group, e.what());
        return sys::worker_boot_error;
    }
    if (s.capture_output && log::error_log_fd() < 0 && !s.errorlog.empty() && s.errorlog != "-") {
        // print() and C-level writes of the app go to the error log file.
        int fd = ::open(s.errorlog.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0) ::dup2(fd, 1), ::dup2(fd, 2), ::close(fd);
    }
    if (inherited) {
        hooks::become_worker(args.age);
        auto& preloaded = inherited->impl_->app;
        return preloaded ? run_worker_class(args, *preloaded) : load_and_run(args);
    }
    std::optional<python_runtime> runtime;
    try {
        runtime.emplace(s);
    } catch (const py::python_error& e) {
        spdlog::error("Worker failed to boot:\n{}", e.traceback());
        return sys::worker_boot_error;
    }
    if (!s.hooks.empty()) hooks::become_worker(args.age);
    return load_and_run(args);
}

int check_app(const config::settings& s) {
    apply_raw_env(s);
    py::interpreter interp(python_paths(s));
    try {
        add_virtualenv(s);
        wsgi::application app(s);
    } catch (const wsgi::load_error& e) {
        return report_load_error(s, e);
    } catch (const py::python_error& e) {
        spdlog::error("{}", e.traceback());
        return 1;
    }
    return 0;
}

}  // namespace gcorn::worker
