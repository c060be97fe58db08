#include "worker/signals.hpp"

#include "hooks/hooks.hpp"

#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <initializer_list>

namespace gcorn::worker {
volatile sig_atomic_t detail::signals_pending = 0;

namespace {
int signal_pipe[2] = {-1, -1};

void on_signal(int sig) {
    int saved = errno;
    detail::signals_pending = 1;
    char c = char(sig);
    [[maybe_unused]] auto n = ::write(signal_pipe[1], &c, 1);
    errno = saved;
}

void on_fast_exit(int) { ::_exit(0); }  // SIGINT: stop now, in-flight request or not
}  // namespace

int install_worker_signals(bool queue_int) {
    if (signal_pipe[0] < 0) ::pipe2(signal_pipe, O_NONBLOCK | O_CLOEXEC);
    struct sigaction sa{};
    sa.sa_handler = on_signal;
    for (int sig : {SIGTERM, SIGQUIT, SIGUSR1}) ::sigaction(sig, &sa, nullptr);
    sa.sa_handler = queue_int ? on_signal : on_fast_exit;
    ::sigaction(SIGINT, &sa, nullptr);
    sa.sa_handler = SIG_IGN;
    for (int sig : {SIGHUP, SIGTTIN, SIGTTOU, SIGWINCH, SIGUSR2}) ::sigaction(sig, &sa, nullptr);
    return signal_pipe[0];
}

void fast_exit() {
    hooks::worker_call(hooks::hook::worker_int);
    ::_exit(0);
}

}  // namespace gcorn::worker
