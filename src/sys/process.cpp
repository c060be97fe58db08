#include "sys/process.hpp"

#include "sys/contract.hpp"

#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

#include "sys/fd.hpp"

namespace gcorn::sys {

pid_t fork_child(const std::function<int()>& child, const fork_hooks& hooks) {
    sigset_t all, old;
    ::sigfillset(&all);
    ::sigprocmask(SIG_SETMASK, &all, &old);
    if (hooks.before) hooks.before();
    pid_t pid = ::fork();
    if (pid == 0) {
        if (hooks.child) hooks.child();
        struct sigaction dfl{};
        dfl.sa_handler = SIG_DFL;
        for (int s = 1; s < NSIG; ++s) ::sigaction(s, &dfl, nullptr);
        sigset_t none;
        ::sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        int rc = 1;
        try {
            rc = child();
        } catch (...) {
            rc = worker_boot_error;
        }
        std::fflush(nullptr);
        ::_exit(rc);  // never return into the parent's stack or run its destructors
    }
    int saved = errno;
    if (hooks.parent) hooks.parent();
    ::sigprocmask(SIG_SETMASK, &old, nullptr);
    if (pid < 0) errno = saved, throw_errno("fork");
    return pid;
}

pidfile::pidfile(std::string path) : path_(std::move(path)) {
    // 0644 whatever the umask: a world-writable pidfile lets anyone point init scripts at another process.
    std::string tmp = path_ + ".tmp";
    unique_fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    auto text = std::to_string(::getpid()) + "\n";
    if (!fd || ::fchmod(fd.get(), 0644) != 0 || ::write(fd.get(), text.data(), text.size()) != ssize_t(text.size()))
        throw_errno("cannot write pidfile " + path_);
    fd.reset();
    if (::rename(tmp.c_str(), path_.c_str()) != 0) throw_errno("cannot write pidfile " + path_);
}

void pidfile::rename(const std::string& to) {
    if (path_.empty() || to == path_) return;
    if (::rename(path_.c_str(), to.c_str()) == 0) path_ = to;
}

pidfile::~pidfile() {
    if (path_.empty()) return;
    std::ifstream in(path_);
    pid_t pid = 0;
    if (in >> pid && pid == ::getpid()) ::unlink(path_.c_str());
}

void daemonize(bool keep_stdio) {
    if (pid_t p = ::fork(); p < 0) throw_errno("fork");
    else if (p > 0) ::_exit(0);
    ::setsid();
    if (pid_t p = ::fork(); p < 0) throw_errno("fork");
    else if (p > 0) ::_exit(0);
    if (keep_stdio) return;  // enable_stdio_inheritance
    unique_fd null(::open("/dev/null", O_RDWR));
    for (int fd = 0; fd < 3; ++fd) ::dup2(null.get(), fd);
}

}  // namespace gcorn::sys

namespace gcorn::sys {
namespace {

// Reads both pipes until the child closes them (poll, so a full stderr cannot block a child writing stdout).
void drain(int out_fd, int err_fd, captured& c) {
    pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
    std::string* into[2] = {&c.out, &c.err};
    char buf[8192];
    for (int open = 2; open > 0;) {
        if (::poll(fds, 2, -1) < 0 && errno != EINTR) break;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !fds[i].revents) continue;
            ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
            if (n > 0) into[i]->append(buf, size_t(n));
            else if (n == 0 || errno != EINTR) fds[i].fd = -1, --open;
        }
    }
}

}  // namespace

captured run_capture(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env) {
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0) throw_errno("pipe");
    if (::pipe2(err, O_CLOEXEC) != 0) ::close(out[0]), ::close(out[1]), throw_errno("pipe");
    unique_fd out_r(out[0]), out_w(out[1]), err_r(err[0]), err_w(err[1]);
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, out_w.get(), 1);
    ::posix_spawn_file_actions_adddup2(&actions, err_w.get(), 2);
    std::vector<std::string> env_strings(extra_env);
    for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);  // ours after: the first of a name wins
    std::vector<char*> args, env;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    for (auto& e : env_strings) env.push_back(const_cast<char*>(e.c_str()));
    args.push_back(nullptr), env.push_back(nullptr);
    pid_t pid;
    int rc = ::posix_spawn(&pid, args[0], &actions, nullptr, args.data(), env.data());
    ::posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) errno = rc, throw_errno("cannot run " + argv[0]);
    out_w.reset(), err_w.reset();
    captured c{-1, {}, {}};
    drain(out_r.get(), err_r.get(), c);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    c.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return c;
}

}  // namespace gcorn::sys
