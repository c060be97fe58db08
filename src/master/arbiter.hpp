// The arbiter (DESIGN §1): forks and supervises workers, one named handler per signal, reloads (HUP) and
// re-executes itself for binary upgrades (USR2). Never runs request code and never starts Python; the
// worker entry point, the config reload and any Python hooks are injected by main.cpp.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/settings.hpp"
#include "sys/listener.hpp"
#include "sys/process.hpp"
#include "sys/contract.hpp"

namespace gcorn::master {

using worker_main = std::function<int(const sys::worker_args&)>;

struct options {
    worker_main main;
    sys::fork_hooks fork_hooks;                                  // e.g. the interpreter's, with preload_app
    std::function<std::optional<config::settings>()> reload;     // HUP: re-read the configuration
    std::vector<std::string> argv;                               // USR2: the arguments to re-execute with
    std::string executable;                                      // ... the binary's path (the upgraded one)
    std::string start_dir;                                       // ... and where (before --chdir)
    pid_t old_master = 0;                                        // set when started by another master's USR2
    sys::master_hooks hooks;
};

class arbiter {
public:
    arbiter(config::settings s, std::vector<sys::listener> listeners, options opt);
    ~arbiter();
    // Runs until stopped by a signal or a worker that cannot boot; returns the process exit code.
    int run();
    // After run(): true if a re-executed master took the listeners over (do not unlink unix sockets).
    bool handed_over() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace gcorn::master
