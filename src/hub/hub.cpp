#include "hub/hub.hpp"

#include <cstring>
#include <optional>

#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <utility>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "py/greenlet.hpp"
#include "py/native.hpp"

namespace {
// Asio's scheduler polls its reactor (an epoll_wait with a zero timeout) whenever it reaches the reactor's place in its
// queue, also when its caller only wants the handlers already queued: the hub, after a wait, runs the handlers that
// came with it with poll_one(), and the last of those calls polled again. Those polls came to 0.2 per request (an
// epoll_wait costs about 1 us on a paravirtualised VM; nginx makes 0.09 epoll_waits per request in all). Binaries
// linking the hub are linked with -Wl,--wrap=epoll_wait (src/meson.build), so every epoll_wait call compiled into
// them comes here; only the hub's drain skips any. While it drains the handlers of a wait that reached the kernel
// in this round, a zero-timeout poll finds nothing without asking: the reactor was polled a moment ago. A round
// whose run_one() only ran a queued handler (greenlets that keep posting, e.g. many yielding in a loop) drains
// with real polls, so the reactor is polled at least every other round, however busy the queue.
thread_local bool draining_batch = false;
thread_local uint64_t kernel_polls = 0;  // epoll_wait calls that reached the kernel on this thread
// When the last of those returned: the moment the events it reported were found (hub::polled_at).
thread_local std::chrono::steady_clock::time_point last_poll_return{};
}  // namespace

extern "C" int __wrap_epoll_wait(int epfd, epoll_event* events, int maxevents, int timeout) {
    if (timeout == 0 && draining_batch) return 0;
    ++kernel_polls;
    int n = ::epoll_pwait(epfd, events, maxevents, timeout, nullptr);  // epoll_wait(2), without a signal mask
    last_poll_return = std::chrono::steady_clock::now();
    return n;
}

namespace gcorn::hub {

std::chrono::steady_clock::time_point polled_at() noexcept {
    auto t = last_poll_return;
    return t == std::chrono::steady_clock::time_point{} ? std::chrono::steady_clock::now() : t;
}

namespace {
hub* the_hub = nullptr;
// Parked greenlets kept for reuse; past this, finished jobs let their greenlet end (bounded memory).
constexpr size_t max_idle_greenlets = 256;
}  // namespace

// One greenlet and the state of its current wait. Heap-allocated and shared with completion handlers,
// which never touch the greenlet's stack (DESIGN §3.1 (2)) and hold no Python references (3).
struct hub::task : std::enable_shared_from_this<task> {
    enum class parked { no, in_wait, in_wait_wakeup };  // where a throw_later or wakeup may find it
    explicit task(hub& h) : owner(h), wait(h.ioc_.get_executor()) {}
    hub& owner;
    py::object greenlet, run;         // dropped by the hub, with the GIL, when the greenlet ends
    py::object py_fn, py_args;        // a job spawned from Python
    job_fn job;                       // a job spawned from C++
    py::object throw_in;              // raised into the greenlet by its next resume (throw_later)
    deadline_wait wait;               // the current wait: its operation, its deadline, which of them won
    uint64_t token = 0;               // the current job's name (0 between jobs)
    woke why = woke::ready;
    parked where = parked::no;
    bool killed = false;
    bool wakeup_pending = false;      // a wakeup arrived while the job was not in wait_wakeup
    bool foreign = false;             // gevent's greenlet, not one of ours: known only while it waits
    bool queued = false;              // on ready_: a second completion (a throw after the wait ended) adds nothing
    bool job_pending = false;         // given a job it has not begun: another task may run it instead

    // The completion of a wait: records why and queues the greenlet to be switched into.
    auto resumer() {
        return [t = shared_from_this()](woke w) {
            t->why = w;
            t->owner.resume(t);
        };
    }
    void drop_python() {
        greenlet = run = py_fn = py_args = throw_in = py::object();
        job.reset();
    }
};

// Every wait of a child greenlet, from the caller's side (STYLE habit 5): refuses to park a killed greenlet,
// marks where it is parked, and however the wait ends (woken, timed out, an exception thrown in) drops the
// wait's other half and cancels the descriptor it watched. Lives on the greenlet's own stack and is only
// touched from that greenlet.
class hub::wait_scope {
public:
    explicit wait_scope(hub& h, task::parked where = task::parked::in_wait) : t_(h.waiting_task()) {
        if (t_->killed) throw killed();
        t_->where = where;
    }
    ~wait_scope() {
        t_->where = task::parked::no;
        t_->wait.settle();
        if (watched_ && t_->why != woke::ready) watched_->cancel();
        if (t_->foreign) t_->owner.forget_foreign(t_);  // with the GIL, here: handlers may outlive the wait
    }
    wait_scope(const wait_scope&) = delete;
    wait_scope& operator=(const wait_scope&) = delete;

    const std::shared_ptr<task>& t() const { return t_; }
    void watch(edge_socket& s) { watched_ = &s; }
    // Switches to the hub until the wait's completion switches back; throws what was thrown in.
    woke park() {
        t_->why = woke::cancelled;  // if an exception unwinds the wait, the watched descriptor is cancelled
        t_->owner.park(*t_);
        return t_->why;
    }

private:
    std::shared_ptr<task> t_;
    edge_socket* watched_ = nullptr;
};

hub::hub(net::io_context& ioc, size_t threadpool_size)
    : ioc_(ioc), pool_(threadpool_size), thread_(std::this_thread::get_id()) {
    py::greenlet_import();
    hub_greenlet_ = py::greenlet_current();
    main_greenlet_ = hub_greenlet_;
    the_hub = this;
}

hub::~hub() {
    pool_.join();
    for (auto& t : tasks_) t->drop_python();
    throws_.clear();
    the_hub = nullptr;
}

hub* hub::current() noexcept { return the_hub; }

bool hub::in_child() const noexcept {
    if (!gevent_mode_) return current_ != nullptr;
    return !py::greenlet_current().is(hub_greenlet_);
}

std::shared_ptr<hub::task> hub::waiting_task() {
    if (!gevent_mode_) return current_;
    // Under gevent a greenlet may have been switched into by gevent (a watcher's callback), not by resume().
    auto g = py::greenlet_current();
    if (current_ && current_->greenlet.is(g)) return current_;
    if (auto it = by_greenlet_.find(g.ptr()); it != by_greenlet_.end())
        if (auto t = it->second.lock()) return current_ = t;
    // A greenlet gcorn did not start (gevent.spawn): a task for it, owning no job, that resume() can switch into.
    auto t = std::make_shared<task>(*this);
    t->greenlet = g;
    t->foreign = true;
    by_greenlet_[g.ptr()] = t;
    foreign_.insert(t);
    return current_ = t;
}

void hub::run() {
    if (py::is_imported("gevent")) {
        py::object gevent_hub;
        try {
            gevent_hub = py::import("gcorn.gevent._worker").attr("adopt")();
        } catch (const py::python_error& e) {
            spdlog::error("gevent is imported but its hub cannot run on gcorn's loop; serving without it:\n{}",
                          e.traceback());
        }
        if (gevent_hub) return run_gevent(gevent_hub);
    }
    // The GIL is let go while the reactor waits in epoll (DESIGN §3 GIL), not between the handlers that are ready:
    // those run one after another under one hold, as a batch of readiness does, instead of taking the GIL and
    // giving it back around each switch (two mutex round trips). Every `batch` handlers it is given back once all
    // the same, so another Python thread waiting for it (the thread pool, an app's thread) is not held off by a
    // busy reactor running little bytecode; the interpreter's switch interval covers the bytecode in between.
    // Handlers only queue the greenlets they resume; run_ready() switches into the first, and each one that parks
    // hands the thread straight to the next (park()): one switch per resumed greenlet instead of two.
    // After a wait, the handlers that became ready with it run before any switch (still without the GIL: handlers
    // never need it), so one epoll batch makes one run of switches and one GIL round trip, not two. The loop goes
    // from the switches straight to the wait: run_one() waits only when no handler is queued (the greenlets'
    // own completions), and a poll in between would add an epoll_wait with a zero timeout to every batch; the
    // drain after a wait polls nothing either (__wrap_epoll_wait above): one epoll_wait per round, as nginx's.
    constexpr int batch = 64;
    while (!ioc_.stopped()) {
        run_ready();
        if (sends_) sends_->flush();  // the responses of this round, in one syscall
        if (before_wait_) before_wait_();
        unlocked_.emplace();
        uint64_t polls = kernel_polls;
        if (ioc_.run_one()) {  // waits only if no handler is queued; then takes what came with it
            struct drain {     // skips zero-timeout polls only if run_one() just polled; reset however it ends
                explicit drain(bool skip) { draining_batch = skip; }
                ~drain() { draining_batch = false; }
            } scope(kernel_polls != polls);
            for (int more = 1; more < batch && ioc_.poll_one();) ++more;
        }
        unlocked_.reset();
    }
    run_ready();
    if (sends_) sends_->close();  // nothing is queued after the loop: a stream destroyed later finds it empty
    if (before_wait_) before_wait_();
    kill_remaining();
    finish();
}

void hub::run_gevent(const py::object& gevent_hub) {
    gevent_mode_ = true;
    hub_greenlet_ = gevent_hub;
    // gevent's Hub.run runs the loop until the io_context stops (finish_in_gevent_hub), then throws LoopExit here.
    py::python_error err;
    if (!py::greenlet_switch(gevent_hub, &err) &&
        py::str_of(py::type_of(err.value()).attr("__name__")) != "LoopExit")
        spdlog::error("gevent's hub failed: {}", err.traceback());
    hub_greenlet_ = main_greenlet_;
    finish();
}

void hub::forget_foreign(const std::shared_ptr<task>& t) {
    by_greenlet_.erase(t->greenlet.ptr());
    foreign_.erase(t);
    if (current_ == t) current_.reset();
    t->greenlet = py::object();
}

void hub::poll_without_gil(const std::function<void()>& poll) {
    if (before_wait_) before_wait_();
    unlocked_.emplace();
    poll();
    unlocked_.reset();
    // What the handlers made ready, in order, now that no Asio frame is live (see resume()).
    run_ready();
}

void hub::run_ready() {
    struct drained {  // however it ends: a task left unswitched (an exception) can be queued again
        hub& h;
        ~drained() {
            for (size_t i = h.ready_next_; i < h.ready_.size(); ++i)
                if (h.ready_[i]) h.ready_[i]->queued = false;
            h.ready_.clear();
            h.ready_next_ = 0;
            h.ready_work_.reset();  // nothing the tasks started since: the reactor may stop
        }
    } end{*this};
    while (ready_next_ < ready_.size()) switch_into(std::move(ready_[ready_next_++]));
}

void hub::finish_in_gevent_hub() {
    if (!stopping_) kill_remaining();
}

void hub::kill_remaining() {
    stopping_ = true;
    // Kill what is left from here, so each child unwinds through its RAII (DESIGN §3.1 (14)).
    for (int round = 0; round < 3 && !tasks_.empty(); ++round) {
        auto live = std::vector<std::shared_ptr<task>>(tasks_.begin(), tasks_.end());
        for (auto& t : live) {
            if (t->greenlet && py::greenlet_started(t->greenlet) && !py::greenlet_dead(t->greenlet)) {
                t->killed = true;
                current_ = t;
                py::python_error err;
                py::greenlet_kill(t->greenlet, &err);
                current_.reset();
            }
            if (!t->greenlet || !py::greenlet_started(t->greenlet) || py::greenlet_dead(t->greenlet)) {
                t->drop_python();
                tasks_.erase(t);
            }
        }
    }
}

void hub::finish() {
    idle_.clear();
    jobs_.clear();
    free_slots_.clear();
    throws_.clear();  // the GIL is held again here
    foreign_.clear();
    by_greenlet_.clear();
    py::gil_release unlocked;  // a pool job still running (a DNS lookup) takes the GIL to finish
    pool_.join();
}

uint64_t hub::spawn(job_fn job) {
    auto t = take_task();
    t->job = std::move(job);
    return start_job(std::move(t));
}

uint64_t hub::spawn_python(const py::object& fn, const py::object& args) {
    auto t = take_task();
    t->py_fn = fn, t->py_args = args;  // on the task, not in the handler: handlers hold no Python references
    return start_job(std::move(t));
}

std::shared_ptr<hub::task> hub::take_task() {
    if (idle_.empty()) return *tasks_.insert(std::make_shared<task>(*this)).first;
    auto t = std::move(idle_.back());
    idle_.pop_back();
    return t;
}

uint64_t hub::start_job(std::shared_ptr<task> t) {
    uint64_t slot;
    if (free_slots_.empty()) {
        slot = jobs_.size();
        if (slot > slot_mask) throw std::length_error("too many greenlets");
        jobs_.emplace_back();
        free_slots_.reserve(jobs_.capacity());
    } else {
        slot = free_slots_.back();
        free_slots_.pop_back();
    }
    uint64_t token = (++next_token_ << (slot_bits + 1)) | (slot << 1) | 1;
    jobs_[slot].token = t->token = token;
    jobs_[slot].runner = t;
    t->wakeup_pending = false;
    t->job_pending = true;
    // Queued like any resumed greenlet (no Asio operation of its own): run_ready() or a parking greenlet's handoff
    // starts it. gevent's loop only looks at ready_ after a poll returns, so there a handler queues it, which
    // makes the poll return.
    if (gevent_mode_) net::post(ioc_, [this, t = std::move(t)] { resume(t); });
    else resume(t);
    return token;
}

hub::job_entry* hub::entry_of(uint64_t token) noexcept {
    auto slot = slot_of(token);
    return token && slot < jobs_.size() && jobs_[slot].token == token ? &jobs_[slot] : nullptr;
}

std::shared_ptr<hub::task> hub::find_job(uint64_t token) {
    auto* e = entry_of(token);
    auto t = e ? e->runner.lock() : nullptr;
    return t && t->token == token ? t : nullptr;
}

// The job `t` runs has ended: its token names nothing from now on.
void hub::end_job(task& t) noexcept {
    if (auto* e = entry_of(t.token)) {
        *e = job_entry{};
        free_slots_.push_back(uint32_t(e - jobs_.data()));
    }
    t.token = 0;
}

void hub::resume(const std::shared_ptr<task>& t) {
    // No switch happens inside a handler: the task is queued and switched into once the poll has returned
    // (run_ready). Under gevent this is required (greenlets gevent started outside any Asio handler have stacks
    // that would overwrite the handler's frame, which Asio keeps a pointer to); without gevent it lets a parking
    // greenlet hand the thread to the next ready one directly, and no handler needs the GIL.
    if (std::exchange(t->queued, true)) return;  // already queued: its switch delivers whatever arrived since
    if (!ready_work_) ready_work_.emplace(ioc_.get_executor());
    ready_.push_back(t);
}

void hub::switch_into(std::shared_ptr<task> t) {
    t->queued = false;
    if (!t->greenlet) {
        t->run = py::native_function(&hub::task_main, t.get());
        t->greenlet = py::greenlet_new(t->run, hub_greenlet_);
        if (gevent_mode_) by_greenlet_[t->greenlet.ptr()] = t;
    }
    running(t);
    py::python_error err;
    py::object thrown = std::move(t->throw_in);  // dropped below, still under the GIL
    // Our own reference: a foreign (gevent) task lets go of its greenlet when its wait ends, inside this switch.
    py::object g = t->greenlet;
    bool ok = thrown ? bool(py::greenlet_throw(g, thrown, &err)) : bool(py::greenlet_switch(g, &err));
    pulse_.running_token.store(0, std::memory_order_relaxed);
    // The greenlet that switched back here is the last of the chain park() handed the thread along: current_.
    auto last = std::exchange(current_, nullptr);
    if (!ok) spdlog::error("greenlet failed: {}", err.traceback());
    if (!last || last->foreign) return;
    if (last != t) g = last->greenlet;
    if (g && py::greenlet_dead(g)) {
        if (gevent_mode_) by_greenlet_.erase(g.ptr());
        last->drop_python();
        tasks_.erase(last);
    }
}

// `t` is about to be switched into: what current_token() and the watchdog's pulse report from now on.
void hub::running(std::shared_ptr<task> t) {
    pulse_.switches.store(pulse_.switches.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    pulse_.running_token.store(t->token, std::memory_order_relaxed);
    current_ = std::move(t);
}

std::shared_ptr<hub::task> hub::next_ready_for(task& parking) {
    // Only a plain resume of a greenlet of ours that has started and is parked: a first switch (creating the
    // greenlet), an exception to throw in and gevent's greenlets go through switch_into() from the hub.
    if (gevent_mode_ || ready_next_ >= ready_.size()) return nullptr;
    auto& n = ready_[ready_next_];
    if (n.get() == &parking || n->foreign || n->throw_in || !n->greenlet || !py::greenlet_started(n->greenlet) ||
        py::greenlet_dead(n->greenlet))
        return nullptr;
    n->queued = false;
    return std::move(ready_[ready_next_++]);
}

bool hub::take_queued_job(const std::shared_ptr<task>& self) {
    // Only the next in line, so ready_ keeps its order; only a job no greenlet has begun, so nothing is on the other
    // task's stack yet (a throw_later for it is thrown at its first switch: left to that task). gevent's loop reads
    // ready_ itself.
    if (gevent_mode_ || ready_next_ >= ready_.size() || idle_.size() >= max_idle_greenlets) return false;
    auto& n = ready_[ready_next_];
    if (n == self || !n->job_pending || n->throw_in || n->foreign) return false;
    self->job = std::move(n->job);
    self->py_fn = std::move(n->py_fn), self->py_args = std::move(n->py_args);
    self->token = std::exchange(n->token, 0);
    self->wakeup_pending = std::exchange(n->wakeup_pending, false);
    self->job_pending = true;
    n->job_pending = n->queued = false;
    if (auto* e = entry_of(self->token)) e->runner = self;
    idle_.push_back(std::move(ready_[ready_next_++]));  // still parked where it waited for a job (or never started)
    running(self);
    return true;
}

py::object hub::task_main(void* ctx, const py::call_args&) {
    auto self = static_cast<task*>(ctx)->shared_from_this();
    hub& h = self->owner;
    for (;;) {
        if (!run_job(*self)) return py::none();
        if (h.stopping_ || self->killed) return py::none();
        // The next ready entry is a request's new job: run it on this greenlet, with no switch at all.
        if (h.take_queued_job(self)) continue;
        if (h.idle_.size() >= max_idle_greenlets) return py::none();
        h.idle_.push_back(self);
        try {
            h.park(*self);  // resumed by spawn() with the next job
        } catch (const std::exception&) {
            return py::none();
        }
    }
}

bool hub::run_job(task& t) {
    struct job_end {  // the token dies with the job, however it ends
        task& t;
        ~job_end() {
            t.owner.end_job(t);
            t.job.reset();
            t.py_fn = t.py_args = py::object();
        }
    } end_of_job{t};
    t.job_pending = false;
    try {
        py::context_scope fresh;  // each job starts with empty contextvars (Flask's request context)
        if (t.job) t.job();
        else if (t.py_fn) py::call_tuple(t.py_fn, t.py_args);
    } catch (const killed&) {
        return false;
    } catch (const py::python_error& e) {
        if (py::is_greenlet_exit(e)) return false;
        spdlog::error("Unhandled exception in a spawned greenlet:\n{}", e.traceback());
    } catch (const std::exception& e) {
        spdlog::error("Unhandled error in a greenlet: {}", e.what());
    }
    return true;
}

void hub::park(task& t) {
    py::python_error err;
    py::object to = hub_greenlet_;
    if (auto next = next_ready_for(t)) {
        to = next->greenlet;
        running(std::move(next));
    }
    if (py::greenlet_switch(to, &err)) return;
    // Something was thrown into us: GreenletExit kills (sticky, DESIGN §3.1 (5)); any other exception comes
    // from throw_later and is the waiting code's to handle.
    if (py::is_greenlet_exit(err)) {
        t.killed = true;
        throw killed();
    }
    throw err;
}

woke hub::wait(edge_socket& s, edge_socket::wait_type w, edge_socket::known k, deadline until) {
    wait_scope scope(*this);
    scope.watch(s);
    scope.t()->wait.start([&s, w, k](auto handler) { s.async_wait(w, k, std::move(handler)); }, until,
                          scope.t()->resumer());
    return scope.park();
}

woke hub::wait_fd(int fd, bool writable, deadline until) {
    // Waits on a private dup() of the fd: a close() of the original by another greenlet meanwhile cannot leave the
    // reactor deregistering a reused fd number later, and an fd the reactor already watches can be waited on too.
    int own = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (own < 0) throw std::system_error(errno, std::generic_category(), "cannot wait on fd " + std::to_string(fd));
    std::optional<edge_socket> s;
    try {
        s.emplace(ioc_, own);  // owns and closes the dup
    } catch (const boost::system::system_error& e) {
        throw std::system_error(e.code(), "cannot wait on fd " + std::to_string(fd));
    }
    // Registered just now: the registration itself reports readiness already there, so no re-arm is needed.
    return wait(*s, writable ? edge_socket::wait_type::wait_write : edge_socket::wait_type::wait_read,
                edge_socket::known::fresh, until);
}

void hub::sleep(deadline until) {
    wait_scope scope(*this);
    scope.t()->wait.start_timer(until, scope.t()->resumer());
    scope.park();
}

void hub::yield() {
    wait_scope scope(*this);
    scope.t()->wait.start([this](auto handler) { net::post(ioc_, [h = std::move(handler)]() mutable { h({}); }); },
                          no_deadline, scope.t()->resumer());
    scope.park();
}

void hub::run_in_threadpool(const std::function<void()>& fn) {
    wait_scope scope(*this);
    // The pool runs its own copy, on the heap (DESIGN §3.1 (2)): a greenlet interrupted meanwhile (throw_later)
    // may start another job before this one ends, so nothing of it may live on the task.
    scope.t()->wait.start(
        [this, job = fn](auto handler) {
            // The work guard keeps the reactor running while only the pool has something to do.
            net::post(pool_, [this, job, h = std::move(handler), busy = net::make_work_guard(ioc_)]() mutable {
                job();
                net::post(ioc_, [h = std::move(h)]() mutable { h({}); });
            });
        },
        no_deadline, scope.t()->resumer());
    scope.park();
}

uint64_t hub::current_token() const noexcept { return current_ ? current_->token : 0; }

void hub::set_label(std::string_view method, std::string_view target) noexcept {
    uint64_t token = current_token();
    if (!token) return;
    auto& l = labels_[slot_of(token) % n_labels];
    auto seq = l.seq.load(std::memory_order_relaxed);
    l.seq.store(seq + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    size_t n = std::min(method.size(), sizeof l.text - 1);
    std::memcpy(l.text, method.data(), n);
    l.text[n++] = ' ';
    size_t m = std::min(target.size(), sizeof l.text - n);
    std::memcpy(l.text + n, target.data(), m);
    l.len = uint32_t(n + m);
    l.token = token;
    l.seq.store(seq + 2, std::memory_order_release);
}

std::string hub::label_of(uint64_t token) const {
    auto& l = labels_[slot_of(token) % n_labels];
    for (int attempt = 0; attempt < 3; ++attempt) {
        auto before = l.seq.load(std::memory_order_acquire);
        if (before & 1) continue;
        std::string text(l.text, std::min<size_t>(l.len, sizeof l.text));
        bool same = l.token == token;
        std::atomic_thread_fence(std::memory_order_acquire);
        if (l.seq.load(std::memory_order_relaxed) == before) return same ? text : std::string();
    }
    return {};
}

woke hub::wait_wakeup(deadline until) {
    wait_scope scope(*this, task::parked::in_wait_wakeup);
    auto& t = scope.t();
    if (std::exchange(t->wakeup_pending, false)) return woke::ready;
    t->wait.start_timer(until, t->resumer());
    return scope.park();
}

void hub::wakeup(uint64_t token) {
    // Posted even from a child of this hub: a handler queues the greenlet, the loop switches (DESIGN §3.1 (8)).
    net::post(ioc_, [this, token] {
        auto t = find_job(token);
        if (!t) return;
        if (t->where == task::parked::in_wait_wakeup && t->wait.settle()) t->resumer()(woke::ready);
        else t->wakeup_pending = true;
    });
}

uint64_t hub::throw_later(uint64_t token, deadline when, py::object exception) {
    uint64_t id = ++next_throw_;
    auto timer = std::make_unique<net::steady_timer>(ioc_, when);
    timer->async_wait([this, id](boost::system::error_code ec) {
        if (!ec) deliver_throw(id);
    });
    throws_.emplace(id, pending_throw{token, std::move(exception), std::move(timer)});
    return id;
}

void hub::cancel_throw(uint64_t id) { throws_.erase(id); }  // a fired-but-queued handler then finds nothing

void hub::deliver_throw(uint64_t id) {
    auto it = throws_.find(id);
    if (it == throws_.end()) return;
    auto t = find_job(it->second.token);
    if (t && t->where != task::parked::no && !t->throw_in) {
        t->throw_in = std::move(it->second.exception);
        throws_.erase(it);
        t->wait.settle();  // the wait's own completions are dropped from now on
        resume(t);         // the wait unwinds (wait_scope) with the exception
        return;
    }
    if (!unlocked_) return void(throws_.erase(it));  // gevent mode, GIL held
    py::gil_release::hold gil(*unlocked_);  // not waiting (or finished): drop the exception
    throws_.erase(it);
}

}  // namespace gcorn::hub
