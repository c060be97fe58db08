#include "master/arbiter.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <random>
#include <sys/wait.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/version.hpp>
#include <spdlog/spdlog.h>

#include "log/log.hpp"
#include "sys/process.hpp"
#include "sys/scoreboard.hpp"

static_assert(BOOST_VERSION >= 108100, "gcorn needs Boost 1.81 (libboost1.81-dev)");

namespace gcorn::master {
namespace net = boost::asio;
using namespace std::chrono_literals;

namespace {
struct worker {
    sys::worker_slot* slot;
    int age;
    int64_t aborted_at_ns = 0;  // when SIGABRT was sent for a timeout, 0 if not
};

const char* signal_name(int sig) {
    switch (sig) {
        case SIGHUP: return "hup";
        case SIGINT: return "int";
        case SIGQUIT: return "quit";
        case SIGTERM: return "term";
        case SIGTTIN: return "ttin";
        case SIGTTOU: return "ttou";
        case SIGUSR1: return "usr1";
        case SIGUSR2: return "usr2";
        case SIGWINCH: return "winch";
        default: return "?";
    }
}
}  // namespace

struct arbiter::impl {
    const config::settings& s;
    const std::vector<sys::listener>& listeners;
    worker_main main;
    sys::fork_hooks hooks;
    net::io_context ioc;
    net::signal_set signals{ioc};
    net::steady_timer tick{ioc};
    sys::scoreboard board{1024};
    std::map<pid_t, worker> workers;
    int target;
    int last_age = 0;
    bool stopping = false;
    int64_t stop_deadline_ns = 0;
    int exit_code = 0;
    std::mt19937 rng{std::random_device{}()};

    impl(const config::settings& settings, const std::vector<sys::listener>& l, worker_main m, sys::fork_hooks h)
        : s(settings), listeners(l), main(std::move(m)), hooks(std::move(h)), target(settings.workers) {}

    // ---- signal handlers (Gunicorn's set, DESIGN §1) ----

    void handle_chld() { reap(); }
    void handle_hup() {
        spdlog::info("Hang up: restarting workers");
        signal_workers(SIGTERM);  // replaced one by one as they exit, with fresh app code
    }
    void handle_ttin() {
        ++target;
        spawn_missing();
    }
    void handle_ttou() {
        if (target <= 1) return;
        --target;
        kill_oldest_extra();
    }
    void handle_usr1() {
        log::reopen();
        signal_workers(SIGUSR1);
    }
    void handle_term() { stop(true); }
    void handle_quit() { stop(true); }
    void handle_int() { stop(false); }

    void dispatch(int sig) {
        if (sig != SIGCHLD) spdlog::info("Handling signal: {}", signal_name(sig));
        switch (sig) {
            case SIGCHLD: return handle_chld();
            case SIGHUP: return handle_hup();
            case SIGTTIN: return handle_ttin();
            case SIGTTOU: return handle_ttou();
            case SIGUSR1: return handle_usr1();
            case SIGTERM: return handle_term();
            case SIGQUIT: return handle_quit();
            case SIGINT: return handle_int();
            default: return;
        }
    }

    // ---- workers ----

    void spawn() {
        sys::worker_slot* slot = board.find_free();
        if (!slot) return spdlog::error("no free scoreboard slot; not spawning");
        slot->requests = 0;
        slot->beat();  // the new worker has `timeout` seconds to boot
        int age = ++last_age;
        unsigned long max_requests = 0;
        if (s.max_requests > 0)
            max_requests = s.max_requests + std::uniform_int_distribution<int>(0, s.max_requests_jitter)(rng);
        sys::worker_args args{s, listeners, *slot, age, ::getpid(), max_requests};
        pid_t pid = sys::fork_child([&] { return main(args); }, hooks);
        slot->pid = pid;
        workers.emplace(pid, worker{slot, age});
        spdlog::info("Booting worker with pid: {}", pid);
    }

    void spawn_missing() {
        while (!stopping && int(workers.size()) < target) spawn();
    }

    void kill_oldest_extra() {
        while (int(workers.size()) > target) {
            auto oldest = std::min_element(workers.begin(), workers.end(),
                                           [](auto& a, auto& b) { return a.second.age < b.second.age; });
            ::kill(oldest->first, SIGTERM);
            oldest->second.age = INT32_MAX;  // do not pick it twice while it finishes
            if (std::count_if(workers.begin(), workers.end(), [](auto& w) { return w.second.age != INT32_MAX; }) <= target)
                break;
        }
    }

    void signal_workers(int sig) {
        for (auto& [pid, w] : workers) ::kill(pid, sig);
    }

    void reap() {
        int status = 0;
        for (pid_t pid; (pid = ::waitpid(-1, &status, WNOHANG)) > 0;) {
            auto it = workers.find(pid);
            if (it == workers.end()) continue;
            it->second.slot->pid = 0;
            workers.erase(it);
            if (WIFEXITED(status)) {
                int code = WEXITSTATUS(status);
                if (code == sys::worker_boot_error || code == sys::app_load_error) {
                    spdlog::error("Worker (pid:{}) exited with code {}", pid, code);
                    spdlog::error("Reason: {}", code == sys::app_load_error ? "App failed to load." : "Worker failed to boot.");
                    exit_code = code;
                    stop(false);
                } else if (code != 0) {
                    spdlog::error("Worker (pid:{}) exited with code {}", pid, code);
                }
            } else if (WIFSIGNALED(status)) {
                int sig = WTERMSIG(status);
                if (sig == SIGKILL) spdlog::error("Worker (pid:{}) was sent SIGKILL! Perhaps out of memory?", pid);
                else spdlog::error("Worker (pid:{}) was sent signal {} ({})", pid, sig, ::strsignal(sig));
            }
        }
        spawn_missing();
        if (stopping && workers.empty()) ioc.stop();
    }

    // Kills workers whose heartbeat is older than `timeout` (SIGABRT, then SIGKILL).
    void murder_stale() {
        if (s.timeout <= 0) return;
        auto now = sys::monotonic_ns();
        auto limit = int64_t(s.timeout * 1e9);
        for (auto& [pid, w] : workers) {
            if (w.aborted_at_ns && now - w.aborted_at_ns > 2'000'000'000) {
                ::kill(pid, SIGKILL);
            } else if (!w.aborted_at_ns && now - w.slot->heartbeat_ns.load() > limit) {
                spdlog::critical("WORKER TIMEOUT (pid:{})", pid);
                w.aborted_at_ns = now;
                ::kill(pid, SIGABRT);
            }
        }
    }

    void stop(bool graceful) {
        if (!stopping) {
            stopping = true;
            stop_deadline_ns = sys::monotonic_ns() + int64_t((graceful ? s.graceful_timeout : 1.0) * 1e9);
        }
        signal_workers(graceful ? SIGTERM : SIGINT);
        if (workers.empty()) ioc.stop();
    }

    // ---- coroutines ----

    net::awaitable<void> signal_loop() {
        for (;;) dispatch(co_await signals.async_wait(net::use_awaitable));
    }

    net::awaitable<void> supervise_loop() {
        for (;;) {
            tick.expires_after(stopping ? 100ms : 1s);
            co_await tick.async_wait(net::use_awaitable);
            reap();
            murder_stale();
            if (stopping && sys::monotonic_ns() > stop_deadline_ns) {
                signal_workers(SIGKILL);  // past graceful_timeout: in-flight requests are cut off
            }
        }
    }
};

arbiter::arbiter(const config::settings& s, const std::vector<sys::listener>& listeners, worker_main main,
                 sys::fork_hooks hooks)
    : impl_(std::make_unique<impl>(s, listeners, std::move(main), std::move(hooks))) {}

arbiter::~arbiter() = default;

int arbiter::run() {
    auto& m = *impl_;
    for (int sig : {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2, SIGWINCH, SIGCHLD})
        m.signals.add(sig);
    ::signal(SIGPIPE, SIG_IGN);
    m.spawn_missing();
    net::co_spawn(m.ioc, m.signal_loop(), net::detached);
    net::co_spawn(m.ioc, m.supervise_loop(), net::detached);
    m.ioc.run();
    // Stopped: anything still alive past its deadline is killed, and every child is reaped.
    for (auto& [pid, w] : m.workers) ::kill(pid, SIGKILL);
    while (::waitpid(-1, nullptr, 0) > 0) {}
    spdlog::info("Shutting down: Master");
    return m.exit_code;
}

}  // namespace gcorn::master
