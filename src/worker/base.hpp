// The worker base (DESIGN §2): what every worker class does once booted, written once — Gunicorn's
// init_process / run / notify: signals through a self-pipe, the heartbeat and parent check, max_requests,
// graceful and quick stop. A driver (sync, or the reactor for gthread and async) only accepts and dispatches.
#pragma once
#include <chrono>
#include <memory>

#include "sys/contract.hpp"
#include "worker/serve.hpp"
#include "worker/transport.hpp"
#include "wsgi/app.hpp"

namespace gcorn::worker {

class worker_base {
public:
    worker_base(const sys::worker_args& args, const wsgi::application& app, const transport& t, bool reactor);
    virtual ~worker_base();
    worker_base(const worker_base&) = delete;
    worker_base& operator=(const worker_base&) = delete;

    // Gunicorn's run(): serves until stopped (a signal, max_requests, the master gone); returns the exit code.
    int run();

protected:
    // The driver's loop: accept and serve until stopping() and every connection is done.
    virtual void loop() = 0;
    // The driver's part of a stop: wake its loop, give idle connections their last call.
    virtual void on_stop() {}

    // Gunicorn's notify(): a sign of life in the scoreboard, and a stop if the master is no longer our parent.
    void notify();
    // Runs the handler of every signal queued since the last call (one syscall only when one came).
    void take_signals();
    // After a connection ends: past max_requests, stop gracefully ("Autorestarting worker").
    void check_exhausted();
    void begin_stop(bool graceful);

    bool stopping() const { return state_.stopping; }
    // A stop's grace (graceful_timeout, or none for a quick stop) has run out: in-flight requests are cut off.
    bool stop_overdue() const;
    int signal_fd() const { return signal_fd_; }
    // How often the heartbeat is written: a quarter of `timeout`, so one late beat never looks like a hang,
    // within [50 ms, 1 s] so the master notices a dead worker quickly and a beat costs nothing.
    std::chrono::milliseconds heartbeat_interval() const;

    const sys::worker_args& args_;
    const config::settings& s_;
    const wsgi::application& app_;
    const transport& t_;
    serve_options opt_;
    serve_state state_;

private:
    void handle_term();  // graceful stop (QUIT and INT, quick stops, exit in worker/signals.cpp)
    void handle_usr1();  // reopen log files

    int signal_fd_;
    std::unique_ptr<deadline_keeper> deadlines_;  // request_timeout
    std::chrono::steady_clock::time_point stop_deadline_{};
};

}  // namespace gcorn::worker
