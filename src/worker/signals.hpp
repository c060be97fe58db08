// Worker-side signal handling for every worker class: handlers only write the signal number to a self-pipe,
// which the worker's loop reads (poll for sync, the reactor for gthread and async). Asio's signal_set is not
// used in workers: its process-wide state is inherited from the master's across fork.
#pragma once
#include <csignal>
#include <unistd.h>

namespace gcorn::worker {

// Installs the handlers: TERM and USR1 are queued to the pipe; QUIT and INT (quick stop, as Gunicorn) exit at
// once, or, with a worker_int hook (`hook_on_quick_stop`), wake a thread that runs the hook and then exits, so a
// request stuck in the app does not hold the stop up. HUP/TTIN/TTOU/WINCH/USR2 (master signals) are ignored.
// Returns the pipe's read end (non-blocking).
int install_worker_signals(bool hook_on_quick_stop);
// QUIT and INT then go through that thread even without the hook: it writes what the access log still holds
// (log::batch_access) before the exit. Call after install_worker_signals.
void quick_stop_through_thread();

// Reads every queued signal; calls on_signal(sig) for each.
template <class F>
void drain_signals(int fd, F&& on_signal);

}  // namespace gcorn::worker

namespace gcorn::worker::detail {
// Set by the handlers: lets a loop skip the pipe read (a syscall) when no signal came.
extern volatile sig_atomic_t signals_pending;
}  // namespace gcorn::worker::detail

template <class F>
void gcorn::worker::drain_signals(int fd, F&& on_signal) {
    if (!detail::signals_pending) return;
    detail::signals_pending = 0;  // cleared before reading: a signal arriving now sets it again
    char sigs[64];
    for (ssize_t n; (n = ::read(fd, sigs, sizeof sigs)) > 0;)
        for (ssize_t i = 0; i < n; ++i) on_signal(int(sigs[i]));
}
