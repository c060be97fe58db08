#include "master/arbiter.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <random>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/version.hpp>
#include <spdlog/spdlog.h>

#include "config/validators.hpp"
#include "log/log.hpp"
#include "log/statsd.hpp"
#include "master/endpoints.hpp"
#include "master/metrics.hpp"
#include "master/reloader.hpp"
#include "sys/fd.hpp"
#include "sys/proctitle.hpp"
#include "sys/scoreboard.hpp"
#include "sys/systemd.hpp"

static_assert(BOOST_VERSION >= 108100, "gcorn needs Boost 1.81 (libboost1.81-dev)");

namespace gcorn::master {
namespace net = boost::asio;
using namespace std::chrono_literals;

namespace {

struct worker {
    sys::worker_slot* slot;
    int age;
    bool retiring = false;      // told to stop (HUP, TTOU, max_requests): no longer counts toward `workers`
    int64_t aborted_at_ns = 0;  // when SIGABRT was sent for a timeout, 0 if not
    bool killed = false;        // we sent SIGKILL (timeout or graceful_timeout), not the OOM killer
    bool trial = false;         // started by reload: replaces the others once one of its generation has booted
    bool manifest_read = false; // reload: what it imported is watched
    const char* stop_cause = nullptr;  // why we told it to stop (a label of master::exit_causes)
    int64_t started_ns = 0;
    std::shared_ptr<sys::unique_fd> inspect{};  // our end of the line to its inspector (`gcorn ctl stack`)
    bool inspecting = false;
};

// Workers that die before loading the app this many times in a row stop the master: no fork storm.
constexpr int max_boot_failures = 5;
// After SIGABRT for a timeout, a worker has this long to dump its Python stack before SIGKILL.
constexpr int64_t abort_grace_ns = 2'000'000'000;
// A quick stop (QUIT, INT) still lets workers run their worker_int hook and exit for this long before SIGKILL.
constexpr double quick_stop_grace_s = 1.0;
// reload: changes closer together than this (an editor's write, rename and chmod) are one reload.
constexpr std::chrono::milliseconds reload_settle = 200ms;
// `gcorn ctl stack`: how long a worker has to answer, and the most it may say.
constexpr auto stack_timeout = 3s;
constexpr uint32_t max_stack_text = 16 << 20;
// The supervisor's tick: how often timeouts and the old master are checked, faster while stopping.
constexpr std::chrono::milliseconds supervise_every = 1s, supervise_every_stopping = 100ms;
// While a new generation boots (HUP, reload) the old one keeps accepting: it is told to stop within this of the
// first new worker's boot, so the new code serves promptly.
constexpr std::chrono::milliseconds supervise_every_trial = 10ms;

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

std::string app_name(const config::settings& s) { return s.app_name(); }

}  // namespace

struct arbiter::impl {
    config::settings s;
    std::vector<sys::listener> listeners;
    options opt;
    net::io_context ioc;
    net::signal_set signals{ioc};
    net::steady_timer tick{ioc};
    sys::scoreboard board;
    std::map<pid_t, worker> workers;
    std::optional<sys::pidfile> pidfile;
    int target;
    int last_age = 0;
    int boot_failures = 0;
    bool stopping = false;
    bool ready_sent = false;  // READY=1 told to systemd since the start or the last HUP
    int64_t stop_deadline_ns = 0;
    int exit_code = 0;
    pid_t reexec_pid = 0;  // the new master started by USR2, while it runs
    std::unique_ptr<reloader> watcher;  // reload
    net::steady_timer reload_timer{ioc};
    std::string reload_cause;           // the file whose change is being settled, "" if none
    std::mt19937 rng{std::random_device{}()};
    // Metrics: what dead workers counted, and why workers exited.
    sys::metrics::totals dead{};
    std::map<std::string, uint64_t> exits;
    double start_time_s = double(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch()).count()) / 1e3;
    std::optional<control_socket> control;
    std::vector<int> master_only_fds;  // the metrics and control listeners: never inherited by a worker

    impl(config::settings settings, std::vector<sys::listener> l, options o)
        : s(std::move(settings)), listeners(std::move(l)), opt(std::move(o)), board(scoreboard_slots(s)),
          target(s.workers) {}

    // Old workers finishing their requests while their replacements boot (HUP) need slots too, as do TTIN's.
    static size_t scoreboard_slots(const config::settings& s) {
        return size_t(s.workers) * 2 + sys::scoreboard::spare_slots;
    }

    // ---- signal handlers (Gunicorn's set, DESIGN §1), each a few lines ----

    void handle_chld() { reap(); }

    // Reload the configuration, start workers with it, then stop the old ones gracefully once one of the new
    // ones has loaded the app (the listeners always have someone accepting; Gunicorn stops them at once). If the
    // new generation cannot load the app, the old workers keep serving.
    void handle_hup() {
        spdlog::info("Hang up: {}", app_name(s));
        sys::systemd::notify("RELOADING=1\nSTATUS=Reloading the configuration and replacing the workers");
        ready_sent = false;  // READY=1 again once a new worker serves
        if (opt.reload) {
            if (auto fresh = opt.reload()) apply_settings(std::move(*fresh));
        }
        if (opt.hooks.on_reload) opt.hooks.on_reload();
        int before = std::exchange(target, s.workers);
        if (before != target && opt.hooks.nworkers_changed) opt.hooks.nworkers_changed(target, before);
        spawn_generation();
    }

    void handle_ttin() { set_target(target + 1); }
    void handle_ttou() { set_target(std::max(1, target - 1)); }

    void handle_usr1() {
        log::reopen();
        signal_workers(SIGUSR1);
    }

    void handle_usr2() { reexec(); }

    // Daemons only (as Gunicorn): stop every worker but keep the master; HUP or TTIN brings them back.
    void handle_winch() {
        if (!s.daemon) return spdlog::info("SIGWINCH ignored. Not daemonized");
        target = 0;
        retire_all("scale_down");
    }

    // As Gunicorn: TERM is graceful, QUIT and INT are quick (in-flight requests are cut).
    void handle_term() { stop(true); }
    void handle_quit() { stop(false); }
    void handle_int() { stop(false); }

    void dispatch(int sig) {
        if (sig != SIGCHLD) spdlog::info("Handling signal: {}", signal_name(sig));
        switch (sig) {
            case SIGCHLD: return handle_chld();
            case SIGHUP: return handle_hup();
            case SIGTTIN: return handle_ttin();
            case SIGTTOU: return handle_ttou();
            case SIGUSR1: return handle_usr1();
            case SIGUSR2: return handle_usr2();
            case SIGWINCH: return handle_winch();
            case SIGTERM: return handle_term();
            case SIGQUIT: return handle_quit();
            case SIGINT: return handle_int();
            default: return;
        }
    }

    // ---- configuration ----

    void apply_settings(config::settings fresh) {
        if (fresh.bind != s.bind) {
            try {
                listeners = sys::open_listeners(fresh.bind, {fresh.backlog, fresh.reuse_port, fresh.umask_value()});
                for (auto& l : listeners) spdlog::info("Listening at: {} ({})", l.name, ::getpid());
            } catch (const std::exception& e) {
                spdlog::error("{}; keeping the old listeners", e.what());
                fresh.bind = s.bind;
            }
        }
        s = std::move(fresh);
        log::setup(s);
        sys::set_proctitle("gcorn: master [" + app_name(s) + "]");
    }

    // ---- workers ----

    int active() const {
        return int(std::count_if(workers.begin(), workers.end(),
                                 [](auto& w) { return !w.second.retiring && !w.second.trial; }));
    }

    void set_target(int n) {
        int before = target;
        target = n;
        spawn_missing();
        retire_extra();
        if (before != target && opt.hooks.nworkers_changed) opt.hooks.nworkers_changed(target, before);
    }

    void spawn(bool trial = false) {
        sys::worker_slot& slot = board.take_free();
        slot.requests = 0;
        slot.booted = false;
        slot.exit_reason = sys::worker_slot::none;
        slot.counters.reset();
        slot.clear_request();
        slot.beat();  // the new worker has `timeout` seconds to boot
        int age = ++last_age;
        unsigned long max_requests = 0;
        if (s.max_requests > 0)
            max_requests = s.max_requests + std::uniform_int_distribution<int>(0, s.max_requests_jitter)(rng);
        sys::worker_args args{s, listeners, slot, age, ::getpid(), max_requests};
        if (watcher) args.reload_manifest_fd = watcher->manifest_fd();
        int pair[2] = {-1, -1};
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0) args.inspect_fd = pair[1];
        if (opt.hooks.pre_fork) opt.hooks.pre_fork(0, age);
        pid_t pid = sys::fork_child([&] {
            for (auto& [other, w] : workers) w.inspect.reset();  // the other workers' lines are the master's
            for (int fd : master_only_fds) ::close(fd);
            if (pair[0] >= 0) ::close(pair[0]);
            return opt.main(args);
        }, opt.fork_hooks);
        if (pair[1] >= 0) ::close(pair[1]);
        slot.pid = pid;
        auto& w = workers.emplace(pid, worker{.slot = &slot, .age = age}).first->second;
        w.trial = trial;
        w.started_ns = sys::monotonic_ns();
        if (pair[0] >= 0) w.inspect = std::make_shared<sys::unique_fd>(pair[0]);
        if (opt.hooks.spawned) opt.hooks.spawned(pid, age);
        spdlog::info("Booting worker with pid: {}", pid);
    }

    // While a new generation boots (HUP, reload), its workers count: an old worker that exits meanwhile (say at
    // max_requests) is not replaced by one of the old generation, which would only be retired at the promotion.
    void spawn_missing() {
        int booting = int(std::count_if(workers.begin(), workers.end(), [](auto& w) { return w.second.trial; }));
        while (!stopping && active() + booting < target) spawn();
    }

    void retire(pid_t pid, worker& w, const char* cause) {
        w.retiring = true;
        if (!w.stop_cause) w.stop_cause = cause;
        ::kill(pid, SIGTERM);  // graceful: in-flight requests finish
    }

    // New workers first, then the old ones stop: the listeners always have someone accepting.
    void retire_all(const char* cause) {
        std::vector<pid_t> old;
        for (auto& [pid, w] : workers)
            if (!w.retiring) old.push_back(pid), w.retiring = true, w.trial = false, w.stop_cause = cause;
        spawn_missing();
        for (pid_t pid : old) ::kill(pid, SIGTERM);
    }

    void retire_extra() {
        while (active() > target) {
            auto oldest = workers.end();
            for (auto it = workers.begin(); it != workers.end(); ++it)
                if (!it->second.retiring && (oldest == workers.end() || it->second.age < oldest->second.age)) oldest = it;
            retire(oldest->first, oldest->second, "scale_down");
        }
    }

    void signal_workers(int sig) {
        for (auto& [pid, w] : workers) ::kill(pid, sig);
    }

    void reap() {
        int status = 0;
        for (pid_t pid; (pid = ::waitpid(-1, &status, WNOHANG)) > 0;) {
            if (pid == reexec_pid) {
                spdlog::info("The re-executed master (pid:{}) exited", pid);
                reexec_pid = 0;
                if (pidfile) pidfile->rename(s.pidfile);  // we are the master again
                continue;
            }
            auto it = workers.find(pid);
            if (it == workers.end()) continue;
            bool booted = it->second.slot->booted, killed_by_us = it->second.killed, trial = it->second.trial;
            bool retiring = it->second.retiring;
            int age = it->second.age;
            count_exit(it->second, status);
            it->second.slot->pid = 0;
            workers.erase(it);
            log_exit(pid, status, killed_by_us);
            if (opt.hooks.child_exit) opt.hooks.child_exit(pid, age);
            if (trial && !booted) {  // the edited app does not load: its error is in the log above
                spdlog::error("Reload failed: the new worker (pid:{}) did not load the app; the old workers keep serving", pid);
                abandon_trial();
                continue;
            }
            if (retiring && !booted) continue;  // told to stop while booting (an abandoned reload): no verdict
            if (WIFEXITED(status) && (WEXITSTATUS(status) == sys::worker_boot_error ||
                                      WEXITSTATUS(status) == sys::app_load_error)) {
                int code = WEXITSTATUS(status);
                spdlog::error("Reason: {}", code == sys::app_load_error ? "App failed to load." : "Worker failed to boot.");
                exit_code = code;
                stop(false);
            } else if (!booted && !stopping && ++boot_failures >= max_boot_failures) {
                spdlog::error("Reason: workers died {} times in a row before loading the app.", boot_failures);
                exit_code = sys::worker_boot_error;
                stop(false);
            } else if (booted) {
                boot_failures = 0;
            }
        }
        spawn_missing();
        if (stopping && workers.empty()) ioc.stop();
    }

    // A dead worker's counters join the master's, so nothing it counted is lost; a request it was serving
    // never got its response.
    void count_exit(const worker& w, int status) {
        auto& c = w.slot->counters;
        c.fold_into(dead);
        dead[sys::metrics::at::dropped] += c.in_flight.load();
        c.reset();
        ++exits[exit_cause(w, status)];
    }

    static std::string exit_cause(const worker& w, int status) {
        if (w.aborted_at_ns) return "timeout";
        if (WIFSIGNALED(status) && !w.killed) return "crash";
        if (w.stop_cause) return w.stop_cause;
        switch (w.slot->exit_reason.load()) {
            case sys::worker_slot::max_requests: return "max_requests";
            case sys::worker_slot::memory: return "memory";
            case sys::worker_slot::parent_changed: return "parent_changed";
            default: break;
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) != 0) return "error";
        return "exit";
    }

    void log_exit(pid_t pid, int status, bool killed_by_us) {
        if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
            spdlog::error("Worker (pid:{}) exited with code {}", pid, WEXITSTATUS(status));
        } else if (WIFSIGNALED(status)) {
            int sig = WTERMSIG(status);
            if (sig == SIGKILL && killed_by_us) spdlog::warn("Worker (pid:{}) was killed: it did not stop in time", pid);
            else if (sig == SIGKILL) spdlog::error("Worker (pid:{}) was sent SIGKILL! Perhaps out of memory?", pid);
            else spdlog::error("Worker (pid:{}) was sent signal {} ({})", pid, sig, ::strsignal(sig));
        }
    }

    // Kills workers whose heartbeat is older than `timeout` (SIGABRT, which dumps the Python stack, then SIGKILL).
    void murder_stale() {
        if (s.timeout <= 0) return;
        auto now = sys::monotonic_ns();
        auto limit = int64_t(s.timeout * 1e9);
        for (auto& [pid, w] : workers) {
            if (w.aborted_at_ns && now - w.aborted_at_ns > abort_grace_ns) {
                w.killed = true;
                ::kill(pid, SIGKILL);
            } else if (!w.aborted_at_ns && now - w.slot->heartbeat_ns.load() > limit) {
                auto request = w.slot->request_text();
                if (request.empty()) spdlog::critical("WORKER TIMEOUT (pid:{})", pid);
                else spdlog::critical("WORKER TIMEOUT (pid:{}) serving {}", pid, request);
                w.aborted_at_ns = now;
                ::kill(pid, SIGABRT);
            }
        }
    }

    void stop(bool graceful) {
        if (!stopping) {
            stopping = true;
            sys::systemd::notify(graceful ? "STOPPING=1\nSTATUS=Stopping gracefully" : "STOPPING=1\nSTATUS=Stopping");
            stop_deadline_ns = sys::monotonic_ns() + int64_t((graceful ? s.graceful_timeout : quick_stop_grace_s) * 1e9);
        }
        for (auto& [pid, w] : workers)
            if (!w.stop_cause) w.stop_cause = graceful ? "graceful_stop" : "quick_stop";
        signal_workers(graceful ? SIGTERM : SIGQUIT);  // as Gunicorn's arbiter
        if (workers.empty()) ioc.stop();
    }

    // enable_backlog_metric: connections waiting to be accepted, summed over the TCP listeners (Gunicorn's).
    void report_backlog() { log::statsd::histogram("gunicorn.backlog", std::max(0L, backlog())); }

    // Connections in the TCP listeners' accept queues, -1 if no listener reports one.
    long backlog() const {
        long total = -1;
        for (auto& l : listeners)
            if (long n = sys::accept_queue_length(l); n >= 0) total = std::max(0L, total) + n;
        return total;
    }

    // ---- observability (issue 12): the fleet as the metrics, status and stats show it ----

    static int64_t rss_bytes(pid_t pid) {
        std::ifstream statm("/proc/" + std::to_string(pid) + "/statm");
        long pages_total = 0, pages_resident = -1;
        if (!(statm >> pages_total >> pages_resident)) return -1;
        return int64_t(pages_resident) * ::sysconf(_SC_PAGESIZE);
    }

    fleet snapshot(bool rows) const {
        fleet f;
        f.totals = dead;
        for (auto cause : exit_causes) f.exits[cause] = 0;
        for (auto& [cause, n] : exits) f.exits[cause] = n;
        f.target = target;
        f.start_time_s = start_time_s;
        f.backlog = backlog();
        auto now = sys::monotonic_ns();
        for (auto& [pid, w] : workers) {
            auto& c = w.slot->counters;
            c.fold_into(f.totals);
            f.connections_open += c.connections_open.load();
            f.connections_idle += c.connections_idle.load();
            f.in_flight += c.in_flight.load();
            f.greenlets += c.greenlets.load();
            ++f.workers;
            bool booted = w.slot->booted.load();
            f.booted += booted;
            if (!rows) continue;
            worker_row r;
            r.pid = pid;
            r.age = w.age;
            r.uptime_s = double(now - w.started_ns) / 1e9;
            r.requests = w.slot->requests.load();
            r.in_flight = c.in_flight.load();
            r.connections = c.connections_open.load();
            r.request = w.slot->request_text();
            if (!r.request.empty()) r.request_age_s = double(now - w.slot->request_start_ns.load()) / 1e9;
            r.rss_bytes = rss_bytes(pid);
            r.state = w.aborted_at_ns ? "timed out" : !booted ? "booting" : w.retiring ? "retiring"
                      : w.trial ? "trial" : r.in_flight ? "busy" : "idle";
            f.rows.push_back(std::move(r));
        }
        return f;
    }

    http_reply route(std::string_view path) const {
        if (path == "/metrics")
            return {200, "text/plain; version=0.0.4; charset=utf-8", prometheus_text(snapshot(false))};
        if (path == "/healthz") {
            if (stopping) return {503, "text/plain; charset=utf-8", "stopping\n"};
            bool booted = std::any_of(workers.begin(), workers.end(),
                                      [](auto& w) { return w.second.slot->booted.load(); });
            if (!booted) return {503, "text/plain; charset=utf-8", "no worker has booted\n"};
            return {200, "text/plain; charset=utf-8", "ok\n"};
        }
        return {404, "text/plain; charset=utf-8", "not found: /metrics and /healthz are served here\n"};
    }

    // Type=notify: ready once a worker has loaded the app (not merely forked), again after a HUP.
    void report_ready() {
        if (ready_sent || stopping) return;
        auto booted = std::count_if(workers.begin(), workers.end(), [](auto& w) { return w.second.slot->booted.load(); });
        if (booted == 0) return;
        ready_sent = true;
        sys::systemd::notify("READY=1\nSTATUS=Serving " + app_name(s) + " with " + std::to_string(active()) + " workers");
    }

    // ---- reload: a changed file replaces the workers once the new code has loaded ----

    void file_changed(const std::string& path) {
        if (stopping) return;
        bool settling = !reload_cause.empty();
        reload_cause = path;
        if (settling) return;
        reload_timer.expires_after(reload_settle);
        reload_timer.async_wait([this](boost::system::error_code ec) {
            if (ec || stopping) return;
            spdlog::info("Worker reloading: {} modified", std::exchange(reload_cause, {}));
            spawn_generation();
        });
    }

    // A new generation of `target` workers that replaces the others once one of it has loaded the app
    // (promote_trial). A newer reload supersedes a generation still booting.
    void spawn_generation() {
        abandon_trial();
        for (int i = 0; i < target; ++i) spawn(true);
    }

    void abandon_trial() {
        for (auto& [pid, w] : workers)
            if (w.trial) w.trial = false, retire(pid, w, "reload");
    }

    bool trial_pending() const {
        return std::any_of(workers.begin(), workers.end(), [](auto& w) { return w.second.trial; });
    }

    // A worker of the new generation loaded the app: it and its siblings replace the old workers (as HUP).
    void promote_trial() {
        bool loaded = std::any_of(workers.begin(), workers.end(),
                                  [](auto& w) { return w.second.trial && w.second.slot->booted.load(); });
        if (!loaded) return;
        for (auto& [pid, w] : workers) {
            if (w.trial) w.trial = false;
            else if (!w.retiring) retire(pid, w, "reload");
        }
    }

    // Each booted worker has listed what it imported; watch it (the first of a generation is enough, but the
    // list may grow with lazy imports, and reading it is cheap).
    void watch_imports() {
        for (auto& [pid, w] : workers) {
            if (w.manifest_read || !w.slot->booted.load()) continue;
            w.manifest_read = true;
            watcher->read_manifest();
        }
        watcher->poll();
    }

    // ---- the control socket: `gcorn ctl` (one line in, one reply out) ----

    static constexpr const char* ctl_usage =
        "commands: status | stats [--json] | workers add N | workers remove N | reload | reopen-logs | stack PID | "
        "stop [--graceful]";

    net::awaitable<std::string> command(std::string line) {
        std::istringstream in(line);
        std::vector<std::string> words;
        for (std::string w; in >> w;) words.push_back(w);
        auto error = [](std::string what) { return "error: " + what + "\n"; };
        if (words.empty()) co_return error(std::string("empty command; ") + ctl_usage);
        auto& verb = words[0];
        auto n_args = words.size() - 1;
        if (verb == "status" && n_args == 0) co_return status_table(snapshot(true));
        if (verb == "stats" && n_args == 0) co_return stats_text(snapshot(true));
        if (verb == "stats" && n_args == 1 && words[1] == "--json") co_return stats_json(snapshot(true));
        if (verb == "workers" && n_args == 2 && (words[1] == "add" || words[1] == "remove")) {
            int n = 0;
            auto [end, ec] = std::from_chars(words[2].data(), words[2].data() + words[2].size(), n);
            if (ec != std::errc{} || end != words[2].data() + words[2].size() || n < 1 || n > 1000)
                co_return error("workers " + words[1] + ": N must be a whole number from 1 to 1000");
            if (stopping) co_return error("the server is stopping");
            int before = target;
            spdlog::info("Control socket: workers {} {}", words[1], n);
            set_target(words[1] == "add" ? target + n : std::max(1, target - n));
            co_return "ok: " + std::to_string(target) + " workers (was " + std::to_string(before) + ")\n";
        }
        if (verb == "reload" && n_args == 0) {
            spdlog::info("Control socket: reload");
            net::post(ioc, [this] { handle_hup(); });
            co_return "ok: reloading\n";
        }
        if (verb == "reopen-logs" && n_args == 0) {
            handle_usr1();
            co_return "ok: log files reopened\n";
        }
        if (verb == "stop" && (n_args == 0 || (n_args == 1 && words[1] == "--graceful"))) {
            bool graceful = n_args == 1;
            spdlog::info("Control socket: stop{}", graceful ? " --graceful" : "");
            net::post(ioc, [this, graceful] { stop(graceful); });
            co_return graceful ? "ok: stopping gracefully\n" : "ok: stopping\n";
        }
        if (verb == "stack" && n_args == 1) co_return co_await stack(words[1]);
        co_return error("unknown command '" + line.substr(0, 100) + "'; " + ctl_usage);
    }

    net::awaitable<std::string> stack(const std::string& which) {
        pid_t pid = 0;
        auto parsed = std::from_chars(which.data(), which.data() + which.size(), pid);
        bool whole = parsed.ec == std::errc{} && parsed.ptr == which.data() + which.size();
        auto it = whole ? workers.find(pid) : workers.end();
        if (it == workers.end()) co_return "error: " + which + " is not the pid of one of this master's workers\n";
        auto& w = it->second;
        if (!w.inspect) co_return "error: worker " + which + " has no inspector (it did not answer before)\n";
        if (w.inspecting) co_return "error: a stack dump of worker " + which + " is already in progress\n";
        w.inspecting = true;
        auto line = w.inspect;  // kept open while we wait, even if the worker is reaped meanwhile
        auto stream = std::make_shared<net::posix::stream_descriptor>(ioc, ::dup(line->get()));
        net::steady_timer timer(ioc);
        timer.expires_after(stack_timeout);
        timer.async_wait([weak = std::weak_ptr(stream)](boost::system::error_code ec) {
            if (auto s = weak.lock(); s && !ec) s->close(ec);
        });
        boost::system::error_code ec;
        char ask = 's';
        uint32_t size = 0;
        std::string text;
        co_await net::async_write(*stream, net::buffer(&ask, 1), net::redirect_error(net::use_awaitable, ec));
        if (!ec) co_await net::async_read(*stream, net::buffer(&size, sizeof size), net::redirect_error(net::use_awaitable, ec));
        if (!ec && (size = ntohl(size)) > max_stack_text) ec = net::error::message_size;
        if (!ec) {
            text.resize(size);
            co_await net::async_read(*stream, net::buffer(text), net::redirect_error(net::use_awaitable, ec));
        }
        if (auto again = workers.find(pid); again != workers.end()) {
            again->second.inspecting = false;
            if (ec) again->second.inspect.reset();  // a late answer would be taken for the next one's
        }
        if (ec) co_return "error: worker " + which + " did not answer (" + ec.message() + ")\n";
        if (!text.ends_with('\n')) text += '\n';
        co_return text;
    }

    // ---- USR2: a new master from the (possibly upgraded) binary inherits the listeners ----

    void reexec() {
        if (reexec_pid) return spdlog::warn("USR2 signal ignored. Child exists.");
        if (opt.old_master) return spdlog::warn("USR2 signal ignored. Parent exists.");
        if (pidfile) pidfile->rename(s.pidfile + ".oldbin");
        auto argv = opt.argv;
        auto dir = opt.start_dir;
        auto exe = opt.executable;
        if (opt.hooks.pre_exec) opt.hooks.pre_exec();
        reexec_pid = sys::fork_child([&]() -> int {
            sys::export_handover(listeners, ::getppid());
            if (!dir.empty() && ::chdir(dir.c_str()) != 0) return 1;  // relative paths in argv mean what they meant
            std::vector<char*> args;
            for (auto& a : argv) args.push_back(a.data());
            args.push_back(nullptr);
            ::execv(exe.c_str(), args.data());  // the path, not /proc/self/exe: after an upgrade that is the old file
            spdlog::error("cannot re-execute gcorn: {}", std::strerror(errno));
            return 1;
        });
        spdlog::info("Re-executing the master: new master pid {}", reexec_pid);
    }

    // A master started by USR2 takes the main pidfile once the old master has gone.
    void maybe_promote() {
        if (!opt.old_master || ::getppid() == opt.old_master) return;
        spdlog::info("Master has been promoted.");
        sys::systemd::notify("MAINPID=" + std::to_string(::getpid()));  // the unit follows the new master
        opt.old_master = 0;
        sys::forget_old_master();
        if (pidfile) pidfile->rename(s.pidfile);
    }

    // ---- coroutines ----

    net::awaitable<void> signal_loop() {
        for (;;) dispatch(co_await signals.async_wait(net::use_awaitable));
    }

    net::awaitable<void> supervise_loop() {
        for (;;) {
            // Readiness is reported, and a reload's new workers take over, within a short tick of their boot.
            tick.expires_after(trial_pending()            ? supervise_every_trial
                               : stopping || !ready_sent ? supervise_every_stopping
                                                         : supervise_every);
            co_await tick.async_wait(net::use_awaitable);
            report_ready();
            if (watcher) watch_imports();
            promote_trial();
            log::statsd::gauge("gunicorn.workers", active());  // as Gunicorn's manage_workers
            if (s.enable_backlog_metric) report_backlog();
            reap();
            murder_stale();
            maybe_promote();
            if (stopping && sys::monotonic_ns() > stop_deadline_ns) {  // past graceful_timeout
                for (auto& [pid, w] : workers) w.killed = true;
                signal_workers(SIGKILL);
            }
        }
    }
};

arbiter::arbiter(config::settings s, std::vector<sys::listener> listeners, options opt)
    : impl_(std::make_unique<impl>(std::move(s), std::move(listeners), std::move(opt))) {}

arbiter::~arbiter() = default;

bool arbiter::handed_over() const { return impl_->reexec_pid != 0; }

int arbiter::run() {
    auto& m = *impl_;
    for (int sig : {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2, SIGWINCH, SIGCHLD})
        m.signals.add(sig);
    ::signal(SIGPIPE, SIG_IGN);
    sys::set_proctitle("gcorn: master [" + app_name(m.s) + "]");
    if (!m.s.pidfile.empty()) m.pidfile.emplace(m.opt.old_master ? m.s.pidfile + ".2" : m.s.pidfile);
    if (m.s.reload) {
        if (m.s.preload_app) spdlog::warn("reload: the app is preloaded in the master (preload_app), so its code is not reloaded");
        try {
            m.watcher = std::make_unique<reloader>(m.ioc, m.s, [&m](const std::string& path) { m.file_changed(path); });
        } catch (const std::exception& e) {
            spdlog::error("{}", e.what());
            return sys::worker_boot_error;
        }
    }
    if (m.opt.hooks.nworkers_changed) m.opt.hooks.nworkers_changed(m.target, -1);  // as Gunicorn's set-up
    try {
        if (!m.s.metrics_bind.empty()) {
            std::vector<sys::listener> l;
            try {
                // SO_REUSEPORT: a master started by USR2 binds it too while this one still runs.
                l = sys::open_listeners({m.s.metrics_bind}, {64, true, m.s.umask_value()});
                if (::listen(l.at(0).fd.get(), 64) != 0) sys::throw_errno("listen");  // reuse_port leaves it bound only
            } catch (const std::exception& e) {
                throw std::runtime_error(std::string("metrics_bind: ") + e.what());
            }
            spdlog::info("Metrics at: {}/metrics", l.at(0).name);
            m.master_only_fds.push_back(
                serve_metrics(m.ioc, std::move(l.at(0)), [&m](std::string_view path) { return m.route(path); }));
        }
        if (!m.s.control_socket.empty() && !m.s.control_socket_disable) {
            m.control.emplace(m.ioc, m.s.control_socket, config::check::parse_umask(m.s.control_socket_mode),
                              [&m](std::string line) { return m.command(std::move(line)); });
            m.master_only_fds.push_back(m.control->fd());
            spdlog::info("Control socket at: {}", m.s.control_socket);
        }
    } catch (const std::exception& e) {
        spdlog::error("{}", e.what());
        return sys::worker_boot_error;
    }
    m.spawn_missing();
    if (m.opt.hooks.when_ready) m.opt.hooks.when_ready();
    net::co_spawn(m.ioc, m.signal_loop(), net::detached);
    net::co_spawn(m.ioc, m.supervise_loop(), net::detached);
    m.ioc.run();
    // Stopped: anything still alive past its deadline is killed, and every worker is reaped.
    for (auto& [pid, w] : m.workers) ::kill(pid, SIGKILL);
    for (auto& [pid, w] : m.workers) ::waitpid(pid, nullptr, 0);
    if (m.opt.hooks.on_exit) m.opt.hooks.on_exit();
    spdlog::info("Shutting down: Master");
    return m.exit_code;
}

}  // namespace gcorn::master
