#include "hooks/python_runtime.hpp"

#include <cstdlib>
#include <fcntl.h>
#include <string>
#include <unistd.h>
#include <vector>

#include <spdlog/spdlog.h>

#include "config/tables.hpp"
#include "gcorn_build_config.hpp"
#include "hooks/hooks.hpp"
#include "hooks/python_logging.hpp"
#include "hub/loop_functions.hpp"
#include "hub/primitives.hpp"
#include "log/log.hpp"
#include "py/object.hpp"

namespace gcorn::hooks {
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

// --virtualenv: its site-packages after --pythonpath, with .pth files processed (site.addsitedir), so an app
// with a venv of pure-Python packages runs on the system interpreter.
void add_virtualenv(const config::settings& s) {
    if (s.virtualenv.empty()) return;
    auto site = s.virtualenv + "/lib/python" GCORN_PYTHON_VERSION "/site-packages";
    py::import("site").attr("addsitedir")({py::str(site)});
}

// After the interpreter starts and before the app is imported: the hub's primitives, the cooperative stdlib for
// the async class, and Python tracebacks on fatal signals (SIGABRT from a timeout kill) in the error log.
void prepare_python(const config::settings& s) {
    add_virtualenv(s);
    install_python_logging(s);  // first: what follows may log
    hub::install_primitives();
    hub::install_loop_functions();
    if (config::worker_kind_of(s) == config::worker_kind::async && s.monkey_patch)
        py::import("gcorn.monkey").attr("patch_all")();
    // After gcorn's patches, so gevent is imported with the originals in place (gcorn.monkey's import guard).
    if (config::worker_kind_of(s) == config::worker_kind::async && s.gevent_monkey_patch)
        py::import("gevent.monkey").attr("patch_all")();
    int fd = 2;
    if (!s.errorlog.empty() && s.errorlog != "-")
        fd = ::open(s.errorlog.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) py::import("faulthandler").attr("enable")({py::integer(fd)});
    if (s.spew) py::import("gcorn._spew").attr("install")();
}

}  // namespace

void apply_raw_env(const config::settings& s) {
    for (auto& kv : s.raw_env) {
        auto eq = kv.find('=');
        ::setenv(kv.substr(0, eq).c_str(), kv.substr(eq + 1).c_str(), 1);
    }
}

int report_load_error(const config::settings& s, const wsgi::load_error& e) {
    spdlog::error("Failed to load application '{}': {}", s.wsgi_app.empty() ? s.paste : s.wsgi_app, e.what());
    if (!e.traceback.empty()) spdlog::error("{}", e.traceback);
    return e.app_error ? sys::app_load_error : sys::worker_boot_error;
}

python_runtime::python_runtime(const config::settings& s) : interp_(python_paths(s)) {
    try {
        prepare_python(s);
        if (!s.hooks.empty()) configure(s);
    } catch (const py::python_error& e) {
        throw startup_error(e.traceback());
    }
}

master_python::master_python(const config::settings& s) : runtime_(s), settings_(s) {
    if (s.preload_app) app_.emplace(s);
}

std::unique_ptr<master_python> master_python::start(const config::settings& s, int* code) {
    // Python's logging (logconfig, syslog) carries the master's lines too, as in Gunicorn.
    if (!s.preload_app && !needs_master_python(s) && !log::wants_python_logging(s)) return nullptr;
    apply_raw_env(s);
    std::unique_ptr<master_python> mp;
    try {
        mp = std::make_unique<master_python>(s);
    } catch (const wsgi::load_error& e) {
        *code = report_load_error(s, e);
        return nullptr;
    } catch (const startup_error& e) {
        spdlog::error("Cannot start Python in the master:\n{}", e.what());
        *code = sys::worker_boot_error;
        return nullptr;
    }
    master_call(hook::on_starting);
    return mp;
}

sys::fork_hooks master_python::fork_hooks() const {
    return {py::before_fork, py::after_fork_parent, py::after_fork_child};
}

sys::master_hooks master_python::server_hooks() const { return master_side(settings_); }

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

}  // namespace gcorn::hooks
