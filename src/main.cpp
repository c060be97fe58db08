// gcorn: parse the configuration, set up logging, open (or inherit) the listeners and run the master with the
// worker entry point injected. Nothing else lives here.
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "config/settings.hpp"
#include "gcorn_build_config.hpp"
#include "log/log.hpp"
#include "master/arbiter.hpp"
#include "sys/listener.hpp"
#include "sys/privileges.hpp"
#include "sys/process.hpp"
#include "sys/proctitle.hpp"
#include "worker/worker.hpp"

namespace {

using namespace gcorn;

int fail(const std::string& message, int code = 1) {
    std::fprintf(stderr, "gcorn: error: %s\n", message.c_str());
    return code;
}

// The worker classes this build runs; the others are refused instead of silently running sync.
bool supported_worker_class(const std::string& k) {
    return k == "sync" || k == "gthread" || k == "async" || k == "gevent" || k == "eventlet";
}

// Servers hold one descriptor per connection: lift the soft limit to the hard one, as servers do.
void raise_open_files_limit() {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &rl);
    }
}

// Sockets handed to us instead of bound by us: a USR2 hand-over (GCORN_FD) or systemd (LISTEN_FDS).
// Unix sockets from a hand-over are ours to unlink at the end (the old master left them to us); systemd's
// are not.
std::optional<std::vector<sys::listener>> inherited_listeners() {
    std::vector<int> fds;
    bool handed_over = std::getenv("GCORN_FD") != nullptr;
    if (const char* list = std::getenv("GCORN_FD")) {
        for (const char* p = list; *p;) {
            fds.push_back(std::atoi(p));
            while (*p && *p != ',') ++p;
            if (*p == ',') ++p;
        }
        ::unsetenv("GCORN_FD");
    } else if (const char* n = std::getenv("LISTEN_FDS"); n && std::getenv("LISTEN_PID") &&
                                                          std::atoi(std::getenv("LISTEN_PID")) == ::getpid()) {
        for (int i = 0; i < std::atoi(n); ++i) fds.push_back(3 + i);  // SD_LISTEN_FDS_START
        ::unsetenv("LISTEN_FDS"), ::unsetenv("LISTEN_PID"), ::unsetenv("LISTEN_FDNAMES");
    }
    if (fds.empty()) return std::nullopt;
    std::vector<sys::listener> out;
    for (int fd : fds) {
        out.push_back(sys::adopt_listener(fd));
        if (handed_over && out.back().is_unix) out.back().unix_path = out.back().host;
    }
    return out;
}

int serve(config::settings s, const std::vector<std::string>& args) {
    char cwd[4096];
    std::string start_dir = ::getcwd(cwd, sizeof cwd) ? cwd : "";
    if (!supported_worker_class(s.worker_class))
        return fail("worker class '" + s.worker_class + "' is not available in this build (use sync, gthread or async)", 2);
    if (s.threads > 1 && s.worker_class == "sync") s.worker_class = "gthread";  // as Gunicorn does
    try {
        log::setup(s);
    } catch (const std::exception& e) {
        return fail(std::string("cannot open log file: ") + e.what());
    }
    if (!s.chdir.empty() && ::chdir(s.chdir.c_str()) != 0) return fail("cannot chdir to " + s.chdir);
    ::umask(mode_t(s.umask_value()));
    std::vector<sys::listener> listeners;
    try {
        auto inherited = inherited_listeners();
        listeners = inherited ? std::move(*inherited)
                              : sys::open_listeners(s.bind, {s.backlog, s.reuse_port, s.umask_value()});
        // Unix sockets belong to the workers' user so they can be reached the same way (Gunicorn chowns too).
        auto id = sys::resolve_identity(s.user, s.group);
        // Log files too: workers run as that user and must reopen them on USR1 (Gunicorn chowns them as well).
        // The group changes only when --group names one: a log's group (e.g. Debian's adm) is the admin's choice.
        for (auto* path : {&s.errorlog, &s.accesslog})
            if (::geteuid() == 0 && id.uid && !path->empty() && *path != "-" &&
                ::chown(path->c_str(), *id.uid, s.group.empty() ? gid_t(-1) : id.gid.value_or(gid_t(-1))) != 0)
                spdlog::warn("cannot chown {}", *path);
        for (auto& l : listeners)
            if (l.is_unix && (id.uid || id.gid) &&
                ::chown(l.unix_path.c_str(), id.uid.value_or(uid_t(-1)), id.gid.value_or(gid_t(-1))) != 0)
                spdlog::warn("cannot chown {}", l.unix_path);
    } catch (const std::exception& e) {
        spdlog::error("{}", e.what());
        return fail(e.what(), std::string(e.what()).find("no such") != std::string::npos ? 2 : 1);
    }
    if (s.daemon && !std::getenv("GCORN_PID")) sys::daemonize();
    spdlog::info("Starting gcorn {}", GCORN_VERSION);
    for (auto& l : listeners) {
        auto name = l.name;
        if (!s.certfile.empty() && name.starts_with("http://")) name.insert(4, "s");  // as Gunicorn names TLS ones
        spdlog::info("Listening at: {} ({})", name, ::getpid());
    }
    spdlog::info("Using worker: {}", s.worker_class);

    // Python in the master only for preload_app (the app imported once, shared copy-on-write; HUP cannot
    // reload it) or master-side hooks; otherwise each worker starts its own interpreter after fork.
    int code = 0;
    auto python = worker::start_master_python(s, &code);
    if (code) return code;
    master::options opt;
    opt.main = [&](const sys::worker_args& a) { return worker::worker_main(a, python.get()); };
    if (python) opt.fork_hooks = python->fork_hooks(), opt.hooks = python->server_hooks();
    opt.argv = args;
    char exe[4096];
    ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    opt.executable = n > 0 ? std::string(exe, size_t(n)) : args[0];
    opt.start_dir = start_dir;
    opt.reload = [args, start_dir]() -> std::optional<config::settings> {
        std::vector<const char*> argv;
        for (auto& a : args) argv.push_back(a.c_str());
        char cwd[4096];
        bool moved = ::getcwd(cwd, sizeof cwd) && ::chdir(start_dir.c_str()) == 0;  // relative -c paths
        std::optional<config::settings> fresh;
        try {
            fresh = config::reload(int(argv.size()), argv.data());
        } catch (const config::config_error& e) {
            spdlog::error("Reload failed, keeping the running configuration: {}", e.what());
        }
        if (moved && ::chdir(cwd) != 0) spdlog::warn("cannot return to {}", cwd);
        return fresh;
    };
    if (const char* old = std::getenv("GCORN_PID")) opt.old_master = ::atoi(old);
    std::vector<std::string> unix_paths;
    for (auto& l : listeners)
        if (l.is_unix) unix_paths.push_back(l.unix_path);
    master::arbiter arbiter(std::move(s), std::move(listeners), std::move(opt));
    int rc = arbiter.run();
    if (!arbiter.handed_over())
        for (auto& path : unix_paths) ::unlink(path.c_str());
    return rc;
}

}  // namespace

int main(int argc, char** argv) {
    raise_open_files_limit();
    std::vector<std::string> args(argv, argv + argc);  // before the process title overwrites argv
    config::loaded cfg;
    try {
        cfg = config::load(argc, argv);
    } catch (const config::config_error& e) {
        return fail(e.what(), 2);
    }
    switch (cfg.what) {
        case config::action::help: std::fputs(cfg.help_text.c_str(), stdout); return 0;
        case config::action::version: std::printf("gcorn (version %s)\n", GCORN_VERSION); return 0;
        case config::action::print_config: std::fputs(config::to_toml(cfg.values).c_str(), stdout); return 0;
        case config::action::check_config:
            if (!cfg.values.chdir.empty() && ::chdir(cfg.values.chdir.c_str()) != 0) return fail("cannot chdir");
            return worker::check_app(cfg.values) == 0 ? 0 : 1;
        case config::action::serve: break;
    }
    sys::init_proctitle(argc, argv);
    return serve(std::move(cfg.values), args);
}
