// Process plumbing for the master and its workers: pidfile, signal masks around fork, daemonizing.
// POSIX only.
#pragma once
#include <csignal>
#include <functional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace gcorn::sys {

// Forks a child that runs `child` and exits with its result. All signals are blocked across the fork
// so no signal reaches the child while it still has the parent's handlers; the child starts with
// default dispositions and an empty mask. Returns the child's pid. Throws std::system_error.
struct fork_hooks {
    std::function<void()> before, parent, child;  // e.g. the interpreter's fork protocol (preload_app)
};
pid_t fork_child(const std::function<int()>& child, const fork_hooks& hooks = {});

// Writes the pid to `path` on construction and removes it on destruction (if it still holds our pid).
class pidfile {
public:
    pidfile() = default;
    explicit pidfile(std::string path);
    ~pidfile();
    void rename(const std::string& to);  // USR2: the old master's file becomes PIDFILE.oldbin
    const std::string& path() const { return path_; }
    pidfile(const pidfile&) = delete;
    pidfile& operator=(const pidfile&) = delete;

private:
    std::string path_;
};

// Runs a program to completion with `extra_env` added to the environment; what it printed and how it ended.
// Throws std::system_error if it cannot be started.
struct captured {
    int exit_code;       // -1 if it died of a signal
    std::string out, err;
};
captured run_capture(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env);

// Detaches from the terminal (double fork, setsid, stdio to /dev/null) like Gunicorn's --daemon.
void daemonize(bool keep_stdio = false);

}  // namespace gcorn::sys
