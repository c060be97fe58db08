// gcorn: parse the configuration, set up logging, open the listeners and run the master with the
// worker entry point injected. Nothing else lives here.
#include <cstdio>
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
#include "worker/worker.hpp"

namespace {

int fail(const std::string& message, int code = 1) {
    std::fprintf(stderr, "gcorn: error: %s\n", message.c_str());
    return code;
}

// The worker classes this build runs; the others are refused instead of silently running sync.
bool supported_worker_class(const std::string& k) {
    return k == "sync" || k == "async" || k == "gevent" || k == "eventlet";
}

int serve(const gcorn::config::settings& s) {
    using namespace gcorn;
    if (!supported_worker_class(s.worker_class))
        return fail("worker class '" + s.worker_class + "' is not available in this build (use sync)", 2);
    if (s.threads > 1 && s.worker_class == "sync")
        return fail("--threads > 1 selects the gthread worker, which is not available in this build", 2);
    try {
        log::setup(s);
    } catch (const std::exception& e) {
        return fail(std::string("cannot open log file: ") + e.what());
    }
    if (!s.chdir.empty() && ::chdir(s.chdir.c_str()) != 0) return fail("cannot chdir to " + s.chdir);
    ::umask(mode_t(s.umask_value()));
    std::vector<sys::listener> listeners;
    try {
        listeners = sys::open_listeners(s.bind, {s.backlog, s.reuse_port, s.umask_value()});
    } catch (const std::exception& e) {
        spdlog::error("{}", e.what());
        return fail(e.what());
    }
    try {
        // Unix sockets belong to the workers' user so they can be reached the same way (Gunicorn chowns too).
        auto id = sys::resolve_identity(s.user, s.group);
        for (auto& l : listeners)
            if (l.is_unix && (id.uid || id.gid) && ::chown(l.unix_path.c_str(), id.uid.value_or(-1), id.gid.value_or(-1)) != 0)
                spdlog::warn("cannot chown {}", l.unix_path);
    } catch (const std::exception& e) {
        return fail(e.what(), 2);
    }
    if (s.daemon) sys::daemonize();
    std::optional<sys::pidfile> pid;
    if (!s.pidfile.empty()) pid.emplace(s.pidfile);
    spdlog::info("Starting gcorn {}", GCORN_VERSION);
    for (auto& l : listeners) spdlog::info("Listening at: {} ({})", l.name, ::getpid());
    spdlog::info("Using worker: {}", s.worker_class);
    // preload_app: import the app once here; workers share it copy-on-write (and HUP cannot reload it).
    std::unique_ptr<worker::preloaded_app> preloaded;
    if (s.preload_app) {
        int code = 0;
        if (!(preloaded = worker::preload(s, &code))) return code;
    }
    auto entry = [&](const sys::worker_args& a) { return worker::worker_main(a, preloaded.get()); };
    int rc = master::arbiter(s, listeners, entry, preloaded ? preloaded->fork_hooks() : sys::fork_hooks{}).run();
    for (auto& l : listeners)
        if (l.is_unix) ::unlink(l.unix_path.c_str());
    return rc;
}

// Servers hold one descriptor per connection: lift the soft limit to the hard one, as servers do.
void raise_open_files_limit() {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &rl);
    }
}

}  // namespace

int main(int argc, char** argv) {
    using namespace gcorn;
    raise_open_files_limit();
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
    return serve(cfg.values);
}
