// The master <-> worker contract, in one place (DESIGN §4): what the master hands a forked worker, the exit codes
// a worker answers with, the server hooks the master calls (with the worker's pid and age), and the variables of
// the USR2 hand-over between an old and a new master. master/ and worker/ both include this; neither the other.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

#include "config/settings.hpp"
#include "sys/listener.hpp"
#include "sys/scoreboard.hpp"

namespace gcorn::sys {

// What the master hands a freshly forked worker.
struct worker_args {
    const config::settings& settings;
    const std::vector<listener>& listeners;
    worker_slot& slot;
    int age;                     // 1 for the first worker, +1 for each one spawned after (Gunicorn's worker.age)
    pid_t master_pid;
    unsigned long max_requests;  // max_requests plus this worker's jitter; 0 = unlimited
    int reload_manifest_fd = -1; // reload: where the worker lists the files it imported (master::reloader)
    int inspect_fd = -1;         // the worker's end of the master's line to its inspector (`gcorn ctl stack`)
};

// Exit codes a worker reports to the master (Gunicorn's values), so the master stops instead of respawning a
// worker that can never boot.
inline constexpr int worker_boot_error = 3;
inline constexpr int app_load_error = 4;

// Server hooks that run in the master (Gunicorn's names); each is optional. Injected by main.cpp.
struct master_hooks {
    std::function<void()> when_ready, on_reload, pre_exec, on_exit;
    std::function<void(pid_t pid, int age)> pre_fork, child_exit;  // pre_fork: pid 0, the child does not exist yet
    std::function<void(int now, int before)> nworkers_changed;      // before < 0 at boot (Gunicorn passes None)
    std::function<void(pid_t pid, int age)> spawned;  // not a Gunicorn hook: keeps the hooks' server.WORKERS current
};

// ---- the USR2 hand-over: the old master execs a new one with the listeners' fds and its own pid ----
struct handover {
    std::vector<int> fds;   // listening sockets to adopt instead of binding
    pid_t old_master = 0;   // the master that started us; we take the main pidfile once it is gone
};

// Sets the variables in the (forked) child about to exec the new master.
void export_handover(const std::vector<listener>& listeners, pid_t old_master);
// Reads and clears the variables: what a USR2 hand-over (or systemd's LISTEN_FDS) gave this process.
// Unix sockets from a hand-over are ours to unlink at the end (the old master left them to us); systemd's are not.
std::optional<std::vector<listener>> inherited_listeners();
// The old master's pid if this master was started by USR2, else 0 (the variable stays until promotion).
pid_t old_master_pid();
// After promotion: we are the only master; a later USR2 of ours may start a new one.
void forget_old_master();

}  // namespace gcorn::sys
