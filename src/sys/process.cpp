#include "sys/process.hpp"

#include "sys/contract.hpp"

#include <cstdio>
#include <fcntl.h>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

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

void daemonize() {
    if (pid_t p = ::fork(); p < 0) throw_errno("fork");
    else if (p > 0) ::_exit(0);
    ::setsid();
    if (pid_t p = ::fork(); p < 0) throw_errno("fork");
    else if (p > 0) ::_exit(0);
    unique_fd null(::open("/dev/null", O_RDWR));
    for (int fd = 0; fd < 3; ++fd) ::dup2(null.get(), fd);
}

}  // namespace gcorn::sys
