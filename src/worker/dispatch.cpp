#include "worker/dispatch.hpp"

#include <spdlog/spdlog.h>

#include "py/gil.hpp"

namespace gcorn::worker {
namespace {
// How long a stopping gthread worker waits for pool threads to finish the request they are in.
constexpr std::chrono::seconds finish_grace{10};
}  // namespace

thread_pool::thread_pool(size_t n) : alive_(n) {
    for (size_t i = 0; i < n; ++i) threads_.emplace_back([this] { work(); });
}

thread_pool::~thread_pool() {
    if (!stop(finish_grace))
        for (auto& t : threads_) t.detach();  // stuck in application code: the process exits without them
}

void thread_pool::submit(std::function<void()> job) {
    {
        std::lock_guard lock(m_);
        jobs_.push_back(std::move(job));
    }
    wake_.notify_one();
}

bool thread_pool::stop(std::chrono::milliseconds grace) {
    std::unique_lock lock(m_);
    done_ = true;
    wake_.notify_all();
    if (!exited_.wait_for(lock, grace, [&] { return alive_ == 0; })) return false;
    lock.unlock();
    for (auto& t : threads_)
        if (t.joinable()) t.join();
    return true;
}

void thread_pool::work() {
    run_jobs();
    std::lock_guard lock(m_);
    --alive_;
    exited_.notify_all();
}

void thread_pool::run_jobs() {
    py::gil_acquire registered;  // this thread's Python thread state, for its whole life
    py::gil_release idle;        // ... but no GIL while it waits for work
    for (;;) {
        std::function<void()> job;
        {
            std::unique_lock lock(m_);
            wake_.wait(lock, [&] { return done_ || !jobs_.empty(); });
            if (done_) return;
            job = std::move(jobs_.front());
            jobs_.pop_front();
        }
        py::gil_release::hold held(idle);
        job();
        // Jobs queued meanwhile run on this thread before it lets go of the GIL: handing the GIL to another pool
        // thread per request costs futex calls and a context switch each time.
        while (auto next = take_queued()) next();
    }
}

std::function<void()> thread_pool::take_queued() {
    std::lock_guard lock(m_);
    if (done_ || jobs_.empty()) return nullptr;
    auto job = std::move(jobs_.front());
    jobs_.pop_front();
    return job;
}

void thread_dispatch::run(const std::function<std::chrono::milliseconds()>& busy_cut) {
    py::gil_release unlocked;  // the pool threads take the GIL in turn; the reactor never needs it
    thread_pool pool(threads_);
    pool_ = &pool;
    ioc_.run();
    if (!pool.stop(busy_cut())) {
        // Threads stuck in application code cannot be joined, and Python cannot be finalised under them.
        spdlog::warn("Worker exiting with requests still running (pid: {})", ::getpid());
        spdlog::default_logger()->flush();
        ::_exit(0);
    }
    pool_ = nullptr;
}

bool green_dispatch::waiter::wait_as(bool writable, hub::edge_socket::known k, http::deadline until) {
    using http::stream_error;
    hub::woke r;
    try {
        r = h->wait(*socket, writable ? hub::edge_socket::wait_type::wait_write : hub::edge_socket::wait_type::wait_read,
                    k, until);
    } catch (const hub::killed&) {
        throw stream_error(stream_error::kind::cancelled, "worker stopping");
    }
    if (r == hub::woke::cancelled) throw stream_error(stream_error::kind::closed, "connection closed");
    return r == hub::woke::ready;
}

bool green_dispatch::waiter::wait_drained(hub::outbox& box, http::deadline until) {
    struct registered {  // however the wait ends (a Timeout thrown in too): the drain wakes nobody after it
        hub::outbox& box;
        ~registered() { box.waiter = 0; }
    } scope{box};
    box.waiter = h->current_token();
    try {
        return h->wait_wakeup(until) != hub::woke::timeout;  // may be spurious: settle() looks at the outbox again
    } catch (const hub::killed&) {
        throw http::stream_error(http::stream_error::kind::cancelled, "worker stopping");
    }
}

void green_dispatch::waiter::yield() {
    try {
        h->yield();
    } catch (const hub::killed&) {
        throw http::stream_error(http::stream_error::kind::cancelled, "worker stopping");
    }
}

}  // namespace gcorn::worker
