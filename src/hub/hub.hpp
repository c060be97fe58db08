// The greenlet <-> Asio bridge (DESIGN §3): the worker's main greenlet runs io_context.run() as the hub;
// every other greenlet waits by registering an Asio operation and switching away, and that operation's completion
// handler queues it to be switched back into. The hub switches into the first queued child once the handlers have
// run; a child that parks hands the thread to the next queued one, or back to the hub. Knows nothing of HTTP or WSGI.
#pragma once
#include <chrono>
#include <cstdint>
#include <atomic>
#include <functional>
#include <string>
#include <string_view>
#include <memory>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include "hub/deadline_wait.hpp"
#include "hub/edge_socket.hpp"
#include "hub/job.hpp"
#include "hub/send_ring.hpp"
#include "py/gil.hpp"
#include "py/object.hpp"

namespace gcorn::py {
class call_args;
}

namespace gcorn::hub {

// The waiting greenlet was killed (GreenletExit thrown into it). Sticky: every later wait throws too
// (DESIGN §3.1 (5)), so an app that swallows GreenletExit cannot park forever.
struct killed : std::runtime_error {
    killed() : std::runtime_error("greenlet killed") {}
};

// When this thread's last epoll_wait that reached the kernel returned (binaries linked with --wrap=epoll_wait, as
// every one linking the hub is: src/meson.build); now() on a thread that has not polled yet. A handler of that poll's
// events runs after it in the same drain, so this is when its socket was found ready, without a clock read of its
// own (one per poll, not one per event: 24 ns each on a paravirtualised VM).
std::chrono::steady_clock::time_point polled_at() noexcept;

class hub {
public:
    // PRECONDITION: the interpreter runs and this thread holds the GIL; called in the main greenlet.
    // `threadpool_size` threads run blocking calls (DNS, run_in_threadpool) while their greenlet waits.
    hub(net::io_context& ioc, size_t threadpool_size = default_threadpool_size);
    // Gevent's default too (its threadpool size): enough for concurrent DNS lookups, few enough to stay cheap.
    static constexpr size_t default_threadpool_size = 10;
    ~hub();
    hub(const hub&) = delete;
    hub& operator=(const hub&) = delete;

    // The process's hub, or null before one exists.
    static hub* current() noexcept;

    // Runs the io_context with the GIL released until it stops, then kills the remaining greenlets
    // from here so their C++ destructors run (DESIGN §3.1 (14)). If the app imported gevent, gevent's Hub is the
    // hub greenlet instead (gcorn.gevent._worker): its loop (gcorn.gevent.loop) runs this io_context through
    // poll_without_gil, and gcorn's greenlets, gevent's greenlets and gevent's patched stdlib share one reactor.
    void run();
    // Called before the reactor waits for events, and every few dozen handlers while it is busy, with the GIL
    // held: work that batches across requests (the access log) is finished there. Set before run().
    void before_wait(std::function<void()> fn) { before_wait_ = std::move(fn); }

    // ---- gevent's hub on this reactor (gcorn.gevent.loop, through hub/loop_functions) ----
    // Runs `poll` (which runs this io_context) without the GIL; the tasks they queued run after it, with the GIL.
    void poll_without_gil(const std::function<void()>& poll);
    // The io_context stopped (the worker is stopping): kills gcorn's greenlets from gevent's hub greenlet, their
    // parent. PRECONDITION: in gevent's hub greenlet, GIL held.
    void finish_in_gevent_hub();
    bool runs_gevent() const noexcept { return gevent_mode_; }

    // Runs `job` in a (pooled) greenlet. Never switches inline: the greenlet is queued like a resumed one and
    // switched into by the loop, or by a greenlet that parks, once the caller has returned (DESIGN §3.1 (1)).
    // `job` must not throw. Returns the job's token (below). PRECONDITION: on the hub's thread.
    uint64_t spawn(job_fn job);
    // Runs fn(*args) in a greenlet; returns the job's token (below). PRECONDITION: GIL held, on the hub's thread.
    uint64_t spawn_python(const py::object& fn, const py::object& args);

    // ---- waits: PRECONDITION: in a child greenlet of this hub, GIL held. They throw `killed`. ----
    // `k`: what the caller knows of the socket's input (edge_socket); a write wait is always after EAGAIN.
    woke wait(edge_socket& s, edge_socket::wait_type w, edge_socket::known k, deadline until);
    woke wait_fd(int fd, bool writable, deadline until);  // an fd the hub does not own
    void sleep(deadline until);
    void yield();  // let every other ready greenlet run first
    // Runs a copy of `fn` on the thread pool (it takes the GIL itself if it needs it) while this greenlet waits.
    // The copy is destroyed on a pool thread, so it must own no Python references once it has run.
    void run_in_threadpool(const std::function<void()>& fn);

    // ---- greenlet-to-greenlet waits (gcorn.green, the patched threading). Every job (one spawn) is named by
    // a token that is never reused, so a late wakeup or throw cannot reach the next job of a pooled greenlet. ----
    // The running job's token; 0 if the caller is not a child greenlet. PRECONDITION: on the hub's thread.
    uint64_t current_token() const noexcept;
    // Parks until wakeup(this job's token) or the deadline. A wakeup that finds the job not waiting here is kept
    // for its next wait_wakeup, so wakeups may be spurious: callers re-check their condition in a loop.
    woke wait_wakeup(deadline until);
    // Wakes the job's wait_wakeup. Thread-safe (it only posts); a finished job's token is ignored.
    void wakeup(uint64_t token);
    // At `when`, raises `exception` inside the job if it is then parked in a wait (gcorn.green.Timeout and
    // Greenlet.kill); GreenletExit kills it (sticky, DESIGN §3.1 (5)). The exception lives in the hub, never in a
    // handler. Returns an id for cancel_throw. PRECONDITION: GIL held, on the hub's thread.
    uint64_t throw_later(uint64_t token, deadline when, py::object exception);
    void cancel_throw(uint64_t id);  // PRECONDITION: GIL held, on the hub's thread

    // True if the caller is a child greenlet of this hub (so waits may park it): one of gcorn's, or under gevent
    // any greenlet but the hub (gevent's own greenlets park in gcorn's waits too).
    bool in_child() const noexcept;
    bool on_hub_thread() const noexcept { return std::this_thread::get_id() == thread_; }
    // Where a complete keep-alive response may leave at the end of the round, with the others (hub/send_ring);
    // null without io_uring, and under gevent's hub (its loop runs the rounds). PRECONDITION: on the hub's thread.
    send_ring* sends() noexcept { return gevent_mode_ || !sends_ || !sends_->usable() ? nullptr : sends_.get(); }
    size_t live_greenlets() const noexcept { return tasks_.size(); }

    // ---- for a watchdog thread (worker/watchdog): read from any thread, written by the hub ----
    struct pulse {
        std::atomic<uint64_t> switches{0};       // switches into a greenlet so far
        std::atomic<uint64_t> running_token{0};  // the job running now; 0 while the hub itself runs
    };
    const pulse& heartbeat() const noexcept { return pulse_; }
    // The slot of the hub's job table a token names (an ended job's slot is reused by a later job).
    static uint64_t slot_of(uint64_t token) noexcept { return (token >> 1) & slot_mask; }
    // What the running job is doing ("GET /path"), for the watchdog's report. PRECONDITION: on the hub's thread.
    void set_label(std::string_view method, std::string_view target) noexcept;
    // The label of job `token` if it is still the last one written for it; "" otherwise. Any thread.
    std::string label_of(uint64_t token) const;
    net::io_context& context() noexcept { return ioc_; }

private:
    struct task;
    class wait_scope;
    struct pending_throw {  // a throw_later waiting for its timer; dropped with the GIL held
        uint64_t token;
        py::object exception;
        std::unique_ptr<net::steady_timer> timer;
    };
    void resume(const std::shared_ptr<task>& t);       // queues it on ready_ (a handler never switches)
    void switch_into(std::shared_ptr<task> t);         // GIL held
    void run_ready();                                  // switches into ready_ in order, GIL held
    void running(std::shared_ptr<task> t);             // current_ and the pulse, before a switch into t
    std::shared_ptr<task> next_ready_for(task& parking);  // the ready task `parking` can hand the thread to
    std::vector<std::shared_ptr<task>> ready_;         // resumed by handlers, switched into after the poll
    size_t ready_next_ = 0;                            // ready_[ready_next_..] not yet switched into
    // Keeps the reactor from running out of work between a handler queuing a task and the task's own next wait.
    std::optional<net::executor_work_guard<net::io_context::executor_type>> ready_work_;
    std::shared_ptr<task> waiting_task();             // the task of the calling greenlet (made for a foreign one)
    void kill_remaining();
    void run_gevent(const py::object& gevent_hub);
    void finish();
    void forget_foreign(const std::shared_ptr<task>& t);
    std::unordered_set<std::shared_ptr<task>> foreign_;  // tasks of gevent's greenlets, while they wait
    void park(task& t);
    std::shared_ptr<task> take_task();               // a pooled greenlet, or a new one
    uint64_t start_job(std::shared_ptr<task> t);     // names the job and queues its first switch
    std::shared_ptr<task> find_job(uint64_t token);
    void deliver_throw(uint64_t id);
    static py::object task_main(void* ctx, const py::call_args&);
    static bool run_job(task& t);  // false if the greenlet was killed
    bool take_queued_job(const std::shared_ptr<task>& self);  // runs the next ready task's unbegun job on `self`

    struct label {
        std::atomic<uint64_t> seq{0};  // odd while being written
        uint64_t token = 0;
        uint32_t len = 0;
        char text[160];
    };
    static constexpr size_t n_labels = 256;
    std::unique_ptr<label[]> labels_ = std::make_unique<label[]>(n_labels);
    pulse pulse_;

    net::io_context& ioc_;
    net::thread_pool pool_;
    py::object hub_greenlet_;
    std::function<void()> before_wait_;
    std::unique_ptr<send_ring> sends_ = send_ring::open();
    std::optional<py::gil_release> unlocked_;  // set while run() may wait in epoll (its handlers only queue)
    std::unordered_set<std::shared_ptr<task>> tasks_;  // the only strong references to live greenlets
    std::vector<std::shared_ptr<task>> idle_;          // parked pooled greenlets ready for a job
    std::shared_ptr<task> current_;
    bool gevent_mode_ = false;
    py::object main_greenlet_;
    std::unordered_map<const void*, std::weak_ptr<task>> by_greenlet_;  // gevent mode: greenlet -> gcorn's task
    // The running jobs, by slot: a token is sequence number, slot and a low 1 bit, so finding a job is an index and a
    // compare, and an ended job's slot is reused first (the entries in use stay few and in cache). Tokens are odd:
    // the patched threading.get_ident() returns a token for gcorn's greenlets and id() for others, an even address.
    struct job_entry {
        uint64_t token = 0;  // 0: free
        std::weak_ptr<task> runner;
    };
    static constexpr unsigned slot_bits = 20;  // a million jobs at once; 2^43 jobs before the sequence wraps
    static constexpr uint64_t slot_mask = (uint64_t(1) << slot_bits) - 1;
    std::vector<job_entry> jobs_;
    std::vector<uint32_t> free_slots_;  // capacity kept >= jobs_.size(): giving a slot back never allocates
    job_entry* entry_of(uint64_t token) noexcept;  // the live job `token` names, or null
    void end_job(task& t) noexcept;
    std::unordered_map<uint64_t, pending_throw> throws_;
    uint64_t next_token_ = 0, next_throw_ = 0;
    std::thread::id thread_;
    bool stopping_ = false;
};

}  // namespace gcorn::hub
