// gcorn: parse the configuration, set up logging, open (or inherit) the listeners and run the master with the
// worker entry point and the master's Python (if any) injected. Only composes; each step lives in its layer.
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "config/settings.hpp"
#include "config/tables.hpp"
#include "gcorn_build_config.hpp"
#include "hooks/hooks.hpp"
#include "hooks/python_runtime.hpp"
#include "log/log.hpp"
#include "master/arbiter.hpp"
#include "master/ctl_client.hpp"
#include "py/interpreter.hpp"
#include "sys/contract.hpp"
#include "sys/listener.hpp"
#include "sys/privileges.hpp"
#include "sys/process.hpp"
#include "sys/proctitle.hpp"
#include "sys/systemd.hpp"
#include "worker/worker.hpp"

namespace {

using namespace gcorn;

// A configuration gcorn cannot start with (as CLI11's usage errors).
constexpr int usage_error = 2;

int fail(const std::string& message, int code = 1) {
    std::fprintf(stderr, "gcorn: error: %s\n", message.c_str());
    return code;
}

// Servers hold one descriptor per connection: lift the soft limit to the hard one, as servers do.
void raise_open_files_limit() {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &rl);
    }
}

// Gunicorn's Python configuration files run in the Python gcorn embeds, in a child process: the master itself
// starts no interpreter for them (DESIGN §1), and a broken file cannot take the master down.
std::string read_python_config(const std::string& source, const std::string& settings, const std::string& hooks) {
    std::string path = py::gcorn_python_dir();
    if (const char* user = std::getenv("PYTHONPATH"); user && *user) path += std::string(":") + user;
    auto r = sys::run_capture({GCORN_PYTHON_EXECUTABLE, "-m", "gcorn._pyconfig", source, settings, hooks},
                              {"PYTHONPATH=" + path});
    if (r.exit_code == 0) return r.out;
    auto why = r.err;
    while (!why.empty() && why.back() == '\n') why.pop_back();
    throw config::config_error(why.substr(why.rfind('\n') + 1));  // the script's last line names file and error
}

std::string current_dir() {
    char cwd[4096];
    return ::getcwd(cwd, sizeof cwd) ? cwd : "";
}

// Unix sockets and log files belong to the workers' user, so they can reach and reopen them (Gunicorn chowns
// them too). A log's group changes only when --group names one: its group (e.g. Debian's adm) is the admin's.
void chown_to_workers(const config::settings& s, const std::vector<sys::listener>& listeners) {
    auto id = sys::resolve_identity(s.user, s.group);
    for (auto* path : {&s.errorlog, &s.accesslog})
        if (::geteuid() == 0 && id.uid && !path->empty() && *path != "-" &&
            ::chown(path->c_str(), *id.uid, s.group.empty() ? gid_t(-1) : id.gid.value_or(gid_t(-1))) != 0)
            spdlog::warn("cannot chown {}", *path);
    for (auto& l : listeners)
        if (l.is_unix && (id.uid || id.gid) &&
            ::chown(l.unix_path.c_str(), id.uid.value_or(uid_t(-1)), id.gid.value_or(gid_t(-1))) != 0)
            spdlog::warn("cannot chown {}", l.unix_path);
}

// Sockets handed over (USR2, systemd) or bound now; then owned by the workers' user.
std::vector<sys::listener> open_listeners(const config::settings& s) {
    auto inherited = sys::inherited_listeners();
    auto listeners = inherited ? std::move(*inherited)
                               : sys::open_listeners(s.bind, {s.backlog, s.reuse_port, s.umask_value()});
    chown_to_workers(s, listeners);
    return listeners;
}

void log_start(const config::settings& s, const std::vector<sys::listener>& listeners) {
    spdlog::info("Starting gcorn {}", GCORN_VERSION);
    for (auto& l : listeners) {
        auto name = l.name;
        if (!s.certfile.empty() && name.starts_with("http://")) name = "https" + name.substr(4);  // as Gunicorn names TLS ones
        spdlog::info("Listening at: {} ({})", name, ::getpid());
    }
    spdlog::info("Using worker: {}", config::worker_class_name(s));
}

// HUP: the configuration re-read from the same arguments, relative -c paths resolved where gcorn started.
std::function<std::optional<config::settings>()> reloader(std::vector<std::string> args, std::string start_dir) {
    return [args = std::move(args), start_dir = std::move(start_dir)]() -> std::optional<config::settings> {
        std::vector<const char*> argv;
        for (auto& a : args) argv.push_back(a.c_str());
        auto here = current_dir();
        bool moved = ::chdir(start_dir.c_str()) == 0;
        std::optional<config::settings> fresh;
        try {
            fresh = config::reload(int(argv.size()), argv.data(), read_python_config);
        } catch (const config::config_error& e) {
            spdlog::error("Reload failed, keeping the running configuration: {}", e.what());
        }
        if (moved && ::chdir(here.c_str()) != 0) spdlog::warn("cannot return to {}", here);
        return fresh;
    };
}

// The arbiter's options: the worker entry point, the master's Python (preload_app, master hooks), the reload and
// re-exec inputs.
master::options arbiter_options(const std::vector<std::string>& args, const std::string& start_dir,
                                const hooks::master_python* python) {
    master::options opt;
    opt.main = [python](const sys::worker_args& a) { return worker::worker_main(a, python); };
    if (python) opt.fork_hooks = python->fork_hooks(), opt.hooks = python->server_hooks();
    opt.argv = args;
    char exe[4096];
    ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    opt.executable = n > 0 ? std::string(exe, size_t(n)) : args[0];
    opt.start_dir = start_dir;
    opt.reload = reloader(args, start_dir);
    opt.old_master = sys::old_master_pid();
    return opt;
}

int serve(config::settings s, const std::vector<std::string>& args) {
    auto start_dir = current_dir();
    try {
        log::setup(s);
    } catch (const std::exception& e) {
        return fail(std::string("cannot open log file: ") + e.what());
    }
    if (!s.chdir.empty() && ::chdir(s.chdir.c_str()) != 0) return fail("cannot chdir to " + s.chdir);
    ::umask(mode_t(s.umask_value()));
    std::vector<sys::listener> listeners;
    try {
        listeners = open_listeners(s);
    } catch (const std::exception& e) {
        spdlog::error("{}", e.what());
        return fail(e.what(), dynamic_cast<const sys::unknown_identity*>(&e) ? usage_error : 1);
    }
    if (s.daemon && sys::systemd::supervised())
        spdlog::info("Not daemonizing: supervised by systemd (NOTIFY_SOCKET is set)");
    else if (s.daemon && !sys::old_master_pid()) sys::daemonize(s.enable_stdio_inheritance);
    log_start(s, listeners);
    int code = 0;
    auto python = hooks::master_python::start(s, &code);
    if (code) return code;
    if (python && !s.hooks.empty()) {
        std::vector<int> fds;
        for (auto& l : listeners) fds.push_back(l.fd.get());
        hooks::set_listeners(fds);
    }
    std::vector<std::string> unix_paths;
    for (auto& l : listeners)
        if (l.is_unix) unix_paths.push_back(l.unix_path);
    master::arbiter arbiter(std::move(s), std::move(listeners), arbiter_options(args, start_dir, python.get()));
    int rc = arbiter.run();
    if (!arbiter.handed_over())
        for (auto& path : unix_paths) ::unlink(path.c_str());
    return rc;
}

}  // namespace

constexpr const char* ctl_usage =
    "usage: gcorn ctl [-s SOCKET | -c CONFIG] COMMAND\n"
    "  -s, --socket PATH   the master's control socket (default: $GCORN_CONTROL_SOCKET)\n"
    "  -c, --config FILE   read control_socket from this configuration file\n"
    "commands: status | stats [--json] | workers add N | workers remove N | reload | reopen-logs | stack PID |\n"
    "          stop [--graceful]\n";

// `gcorn ctl ...`: talk to a running master's control socket.
int ctl(int argc, char** argv) {
    std::string socket_path, config_file;
    std::vector<std::string> words;
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        if ((a == "-s" || a == "--socket" || a == "-c" || a == "--config") && i + 1 < argc && words.empty())
            (a == "-s" || a == "--socket" ? socket_path : config_file) = argv[++i];
        else if (a == "-h" || a == "--help") return std::fputs(ctl_usage, stdout), 0;
        else words.push_back(a);
    }
    if (socket_path.empty() && !config_file.empty()) {
        std::string flag = "-c", app = "ctl:unused";  // the file is read for control_socket; no app is needed
        std::vector<char*> cargv{argv[0], flag.data(), config_file.data(), app.data()};
        try {
            socket_path = config::load(int(cargv.size()), cargv.data(), read_python_config).values.control_socket;
        } catch (const config::config_error& e) {
            return fail(e.what(), usage_error);
        }
        if (socket_path.empty()) return fail(config_file + " sets no control_socket", usage_error);
    }
    if (const char* env = std::getenv("GCORN_CONTROL_SOCKET"); socket_path.empty() && env) socket_path = env;
    if (socket_path.empty() || words.empty()) return std::fputs(ctl_usage, stderr), usage_error;
    return master::ctl_main(socket_path, words);
}

int main(int argc, char** argv) {
    if (argc > 1 && std::string_view(argv[1]) == "ctl") return ctl(argc, argv);
    raise_open_files_limit();
    std::vector<std::string> args(argv, argv + argc);  // before the process title overwrites argv
    config::loaded cfg;
    try {
        cfg = config::load(argc, argv, read_python_config);
    } catch (const config::config_error& e) {
        return fail(e.what(), usage_error);
    }
    switch (cfg.what) {
        case config::action::help: std::fputs(cfg.help_text.c_str(), stdout); return 0;
        case config::action::version: std::printf("gcorn (version %s)\n", GCORN_VERSION); return 0;
        case config::action::print_config: std::fputs(config::to_toml(cfg.values).c_str(), stdout); return 0;
        case config::action::check_config:
            if (!cfg.values.chdir.empty() && ::chdir(cfg.values.chdir.c_str()) != 0) return fail("cannot chdir");
            return hooks::check_app(cfg.values) == 0 ? 0 : 1;
        case config::action::serve: break;
    }
    sys::init_proctitle(argc, argv);
    return serve(std::move(cfg.values), args);
}
