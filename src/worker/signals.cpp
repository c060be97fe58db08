#include "worker/signals.hpp"

#include <cerrno>
#include <fcntl.h>
#include <initializer_list>
#include <thread>
#include <utility>

#include "hooks/hooks.hpp"
#include "log/log.hpp"

namespace gcorn::worker {
volatile sig_atomic_t detail::signals_pending = 0;

namespace {
int signal_pipe[2] = {-1, -1};
int quick_stop_pipe[2] = {-1, -1};

void on_signal(int sig) {
    int saved = errno;
    detail::signals_pending = 1;
    char c = char(sig);
    [[maybe_unused]] auto n = ::write(signal_pipe[1], &c, 1);
    errno = saved;
}

void on_quick_stop_now(int) { ::_exit(0); }  // QUIT/INT: stop now, in-flight requests or not

void on_quick_stop(int sig) {
    char c = char(sig);
    [[maybe_unused]] auto n = ::write(quick_stop_pipe[1], &c, 1);
}

bool quick_stop_thread = false;

// Waits for QUIT/INT; then the worker_int hook if there is one (it takes the GIL: an app holding it gives it up
// within the interpreter's switch interval, one asleep in a call already has), writes the access lines a batching
// worker still holds (this takes the log's lock, which a signal handler could find held), and exits, whatever the
// worker is doing.
void start_quick_stop_thread(bool hook) {
    if (std::exchange(quick_stop_thread, true)) return;
    ::pipe2(quick_stop_pipe, O_CLOEXEC);
    std::thread([hook] {
        char c;
        while (::read(quick_stop_pipe[0], &c, 1) < 0 && errno == EINTR) {
        }
        if (hook) hooks::worker_call(hooks::hook::worker_int);
        log::flush_access();
        ::_exit(0);
    }).detach();
    struct sigaction sa{};
    sa.sa_handler = on_quick_stop;
    for (int sig : {SIGQUIT, SIGINT}) ::sigaction(sig, &sa, nullptr);
}

}  // namespace

int install_worker_signals(bool hook_on_quick_stop) {
    if (signal_pipe[0] < 0) ::pipe2(signal_pipe, O_NONBLOCK | O_CLOEXEC);
    struct sigaction sa{};
    sa.sa_handler = on_signal;
    for (int sig : {SIGTERM, SIGUSR1}) ::sigaction(sig, &sa, nullptr);
    sa.sa_handler = on_quick_stop_now;
    for (int sig : {SIGQUIT, SIGINT}) ::sigaction(sig, &sa, nullptr);
    if (hook_on_quick_stop) start_quick_stop_thread(true);
    sa.sa_handler = SIG_IGN;
    for (int sig : {SIGHUP, SIGTTIN, SIGTTOU, SIGWINCH, SIGUSR2}) ::sigaction(sig, &sa, nullptr);
    return signal_pipe[0];
}

}  // namespace gcorn::worker

void gcorn::worker::quick_stop_through_thread() { start_quick_stop_thread(false); }
