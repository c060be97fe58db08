#include "worker/base.hpp"

#include <algorithm>
#include <csignal>
#include <fcntl.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "config/tables.hpp"
#include "hooks/hooks.hpp"
#include "log/log.hpp"
#include "worker/signals.hpp"

namespace gcorn::worker {
namespace {

using ms = std::chrono::milliseconds;
using clock = std::chrono::steady_clock;

// The worker's signals and their handlers (Gunicorn's workers/base.py init_signals), one row each.
struct signal_handler {
    int sig;
    void (worker_base::*handle)();
};

}  // namespace

worker_base::worker_base(const sys::worker_args& args, const wsgi::application& app, const transport& t, bool reactor)
    : args_(args), s_(args.settings), app_(app), t_(t), opt_(serve_options::from(s_, reactor)),
      signal_fd_(install_worker_signals(hooks::configured(s_, hooks::hook::worker_int))) {
    state_.max_requests = args.max_requests;
    state_.slot = &args.slot;
    if (s_.request_timeout > 0) {
        switch (config::worker_kind_of(s_)) {
            case config::worker_kind::async: {
                // Told within a tenth of the timeout (at most 100 ms late, at least every 10 ms).
                auto period = std::clamp<int64_t>(int64_t(s_.request_timeout * 100), 10, 100);
                deadlines_ = std::make_unique<green_deadlines>(std::chrono::milliseconds(period));
                break;
            }
            case config::worker_kind::sync: deadlines_ = std::make_unique<thread_deadlines>(true); break;
            case config::worker_kind::gthread: deadlines_ = std::make_unique<thread_deadlines>(false); break;
        }
        state_.deadlines = deadlines_.get();
    }
    if (s_.max_worker_memory > 0) {
        state_.statm_fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
        state_.max_rss_pages = long(s_.max_worker_memory) * 1024 * 1024 / ::sysconf(_SC_PAGESIZE);
    }
}

worker_base::~worker_base() {
    if (state_.statm_fd >= 0) ::close(state_.statm_fd);
}

int worker_base::run() {
    spdlog::debug("Worker {} ready ({})", ::getpid(), config::worker_class_name(s_));
    loop();
    // The async worker's request clock runs a timer on the driver's io_context, which is gone before this base is.
    state_.deadlines = nullptr;
    deadlines_.reset();
    if (state_.exhausted() && !state_.over_memory) spdlog::info("Autorestarting worker after current request.");
    spdlog::info("Worker exiting (pid: {})", ::getpid());
    return 0;
}

void worker_base::notify() {
    args_.slot.beat();
    if (state_.max_rss_pages && !stopping()) {
        state_.check_memory();
        check_exhausted();
    }
    if (::getppid() != args_.master_pid && !stopping()) {
        spdlog::info("Parent changed, shutting down: {}", ::getpid());
        args_.slot.exit_reason = sys::worker_slot::parent_changed;
        begin_stop(false);
    }
}

void worker_base::take_signals() {
    static constexpr signal_handler table[] = {
        {SIGTERM, &worker_base::handle_term},
        {SIGUSR1, &worker_base::handle_usr1},
    };
    drain_signals(signal_fd_, [this](int sig) {
        for (auto& h : table)
            if (h.sig == sig) (this->*h.handle)();
    });
}

void worker_base::handle_term() { begin_stop(true); }
void worker_base::handle_usr1() { log::reopen(); }

void worker_base::check_exhausted() {
    if (state_.exhausted() && !stopping()) {
        if (state_.over_memory) {
            spdlog::info("Worker (pid:{}) uses {} MiB, more than max_worker_memory ({} MiB): restarting after current requests",
                         ::getpid(), state_.check_memory() >> 20, s_.max_worker_memory);
            args_.slot.exit_reason = sys::worker_slot::memory;
        } else {
            args_.slot.exit_reason = sys::worker_slot::max_requests;
        }
        begin_stop(true);
    }
}

void worker_base::begin_stop(bool graceful) {
    if (stop_deadline_ == clock::time_point{})
        stop_deadline_ = clock::now() + ms(int64_t((graceful ? s_.graceful_timeout : 0) * 1000));
    state_.stopping = true;
    on_stop();
}

bool worker_base::stop_overdue() const { return stopping() && clock::now() > stop_deadline_; }

std::chrono::milliseconds worker_base::heartbeat_interval() const {
    if (s_.timeout <= 0) return ms(1000);
    return ms(std::clamp(int64_t(s_.timeout * 250), int64_t(50), int64_t(1000)));
}

}  // namespace gcorn::worker
