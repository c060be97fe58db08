// Worker-side signal handling for every worker class: handlers only write the signal number to a
// self-pipe, which the worker's loop reads (poll for sync, the reactor for async). Asio's signal_set is not
// used in workers: its process-wide state is inherited from the master's across fork.
#pragma once

namespace gcorn::worker {

// Installs the handlers: TERM/QUIT/USR1 are queued to the pipe; INT exits at once (fast stop), or is queued
// too when `queue_int` (a worker_int hook must run first); HUP/TTIN/TTOU/WINCH/USR2 (master signals) are
// ignored. Returns the pipe's read end (non-blocking).
int install_worker_signals(bool queue_int = false);

// SIGINT taken from the pipe: the worker_int hook, then exit at once.
[[noreturn]] void fast_exit();

// Reads every queued signal; calls on_signal(sig) for each.
template <class F>
void drain_signals(int fd, F&& on_signal);

}  // namespace gcorn::worker

#include <csignal>
#include <unistd.h>

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
