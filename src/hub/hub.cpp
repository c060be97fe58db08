#include "hub/hub.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <utility>

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "py/greenlet.hpp"
#include "py/native.hpp"

namespace gcorn::hub {
namespace {
hub* the_hub = nullptr;
// Parked greenlets kept for reuse; past this, finished jobs let their greenlet end (bounded memory).
constexpr size_t max_idle_greenlets = 256;
}  // namespace

// One greenlet and the state of its current wait. Heap-allocated and shared with completion handlers,
// which never touch the greenlet's stack (DESIGN §3.1 (2)) and hold no Python references (3).
struct hub::task : std::enable_shared_from_this<task> {
    explicit task(hub& h) : owner(h), timer(h.ioc_) {}
    hub& owner;
    py::object greenlet, run;         // dropped by the hub, with the GIL, when the greenlet ends
    py::object py_fn, py_args;        // a job spawned from Python
    std::function<void()> job;        // a job spawned from C++
    py::object throw_in;              // raised into the greenlet by its next resume (throw_later)
    uint64_t wait_id = 0;             // bumped by every wake: a stale completion finds another id
    uint64_t token = 0;               // the current job's name (0 between jobs)
    woke why = woke::ready;
    bool killed = false;
    bool in_wait = false;             // parked in one of the waits (not idle in the pool, not yet started)
    bool in_wait_wakeup = false;
    bool wakeup_pending = false;      // a wakeup arrived while the job was not in wait_wakeup
    net::steady_timer timer;

    void drop_python() {
        greenlet = run = py_fn = py_args = throw_in = py::object();
        job = nullptr;
    }
};

hub::hub(net::io_context& ioc, size_t threadpool_size)
    : ioc_(ioc), pool_(threadpool_size), thread_(std::this_thread::get_id()) {
    py::greenlet_import();
    hub_greenlet_ = py::greenlet_current();
    the_hub = this;
}

hub::~hub() {
    pool_.join();
    for (auto& t : tasks_) t->drop_python();
    throws_.clear();
    the_hub = nullptr;
}

hub* hub::current() noexcept { return the_hub; }

bool hub::in_child() const noexcept { return current_ != nullptr; }

void hub::run() {
    unlocked_ = std::make_unique<py::gil_release>();  // epoll waits without the GIL (DESIGN §3 GIL)
    ioc_.run();
    unlocked_.reset();
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
    idle_.clear();
    jobs_.clear();
    throws_.clear();  // the GIL is held again here
    py::gil_release unlocked;  // a pool job still running (a DNS lookup) takes the GIL to finish
    pool_.join();
}

void hub::spawn(std::function<void()> job) {
    net::post(ioc_, [this, job = std::move(job)]() mutable {
        std::shared_ptr<task> t;
        if (!idle_.empty()) {
            t = std::move(idle_.back());
            idle_.pop_back();
        } else {
            t = std::make_shared<task>(*this);
            tasks_.insert(t);
        }
        t->job = std::move(job);
        begin_job(t);
        resume(t);
    });
}

uint64_t hub::spawn_python(const py::object& fn, const py::object& args) {
    std::shared_ptr<task> t;
    if (!idle_.empty()) {
        t = std::move(idle_.back());
        idle_.pop_back();
    } else {
        t = std::make_shared<task>(*this);
        tasks_.insert(t);
    }
    t->py_fn = fn, t->py_args = args;  // on the task, not in the handler: handlers hold no Python references
    begin_job(t);
    net::post(ioc_, [this, t] { resume(t); });
    return t->token;
}

void hub::begin_job(const std::shared_ptr<task>& t) {
    t->token = ++next_token_;
    t->wakeup_pending = false;
    jobs_[t->token] = t;
}

std::shared_ptr<hub::task> hub::find_job(uint64_t token) const {
    auto it = jobs_.find(token);
    if (it == jobs_.end()) return nullptr;
    auto t = it->second.lock();
    return t && t->token == token ? t : nullptr;
}

void hub::resume(const std::shared_ptr<task>& t) {
    py::gil_release::hold gil(*unlocked_);
    if (!t->greenlet) {
        t->run = py::native_function(&hub::task_main, t.get());
        t->greenlet = py::greenlet_new(t->run, hub_greenlet_);
    }
    current_ = t;
    py::python_error err;
    py::object thrown = std::move(t->throw_in);  // dropped below, still under the GIL
    bool ok = thrown ? bool(py::greenlet_throw(t->greenlet, thrown, &err)) : bool(py::greenlet_switch(t->greenlet, &err));
    if (!ok) spdlog::error("greenlet failed: {}", err.traceback());
    current_.reset();
    if (py::greenlet_dead(t->greenlet)) {
        t->drop_python();
        tasks_.erase(t);
    }
}

py::object hub::task_main(void* ctx, const py::object&, const py::object&) {
    auto self = static_cast<task*>(ctx)->shared_from_this();
    hub& h = self->owner;
    for (;;) {
        if (!run_job(*self)) return py::none();
        if (h.stopping_ || self->killed || h.idle_.size() >= max_idle_greenlets) return py::none();
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
            t.owner.jobs_.erase(t.token);
            t.token = 0;
            t.job = nullptr;
            t.py_fn = t.py_args = py::object();
        }
    } end_of_job{t};
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
    if (py::greenlet_switch(hub_greenlet_, &err)) return;
    // Something was thrown into us: GreenletExit kills (sticky, DESIGN §3.1 (5)); any other exception comes
    // from throw_later and is the waiting code's to handle.
    if (py::is_greenlet_exit(err)) {
        t.killed = true;
        throw killed();
    }
    throw err;
}

void hub::suspend(task& t) {
    struct waiting {
        task& t;
        explicit waiting(task& t) : t(t) { t.in_wait = true; }
        ~waiting() { t.in_wait = false; }
    } scope(t);
    park(t);
}

void hub::wake(const std::shared_ptr<task>& t, uint64_t id, woke why) {
    if (t->wait_id != id) return;  // the other operation of this wait already woke it (DESIGN §3.1 (3))
    ++t->wait_id;
    t->why = why;
    resume(t);
}

// The deadline half of a wait: wakes the task with `timeout` unless the wait `id` already ended.
void hub::arm_timer(const std::shared_ptr<task>& t, uint64_t id, deadline until) {
    t->timer.expires_at(until);
    t->timer.async_wait([this, t, id](boost::system::error_code ec) {
        if (!ec) wake(t, id, woke::timeout);
    });
}

woke hub::wait(net::posix::stream_descriptor& d, net::posix::descriptor_base::wait_type w, deadline until) {
    auto t = current_;
    if (t->killed) throw killed();
    uint64_t id = t->wait_id;
    d.async_wait(w, [this, t, id](boost::system::error_code ec) { wake(t, id, ec ? woke::cancelled : woke::ready); });
    if (until != no_deadline) arm_timer(t, id, until);
    try {
        suspend(*t);
    } catch (...) {
        ++t->wait_id;
        t->timer.cancel();
        d.cancel();
        throw;
    }
    if (until != no_deadline) t->timer.cancel();
    if (t->why != woke::ready) d.cancel();
    return t->why;
}

woke hub::wait_fd(int fd, bool writable, deadline until) {
    // Waits on a private dup() of the fd: a close() of the original by another greenlet meanwhile cannot leave the
    // reactor deregistering a reused fd number later, and an fd the reactor already watches can be waited on too.
    int own = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (own < 0) throw std::system_error(errno, std::generic_category(), "cannot wait on fd " + std::to_string(fd));
    net::posix::stream_descriptor d(ioc_);
    boost::system::error_code ec;
    d.assign(own, ec);  // on success `d` owns and closes the dup
    if (ec) {
        ::close(own);
        throw std::system_error(ec, "cannot wait on fd " + std::to_string(fd));
    }
    return wait(d, writable ? net::posix::descriptor_base::wait_write : net::posix::descriptor_base::wait_read, until);
}

void hub::sleep(deadline until) {
    auto t = current_;
    if (t->killed) throw killed();
    arm_timer(t, t->wait_id, until);
    try {
        suspend(*t);
    } catch (...) {
        ++t->wait_id;
        t->timer.cancel();
        throw;
    }
}

void hub::yield() {
    auto t = current_;
    if (t->killed) throw killed();
    uint64_t id = t->wait_id;
    net::post(ioc_, [this, t, id] { wake(t, id, woke::ready); });
    try {
        suspend(*t);
    } catch (...) {
        ++t->wait_id;
        throw;
    }
}

void hub::run_in_threadpool(const std::function<void()>& fn) {
    auto t = current_;
    if (t->killed) throw killed();
    uint64_t id = t->wait_id;
    // The pool runs its own copy, on the heap (DESIGN §3.1 (2)): a greenlet interrupted meanwhile (throw_later)
    // may start another job before this one ends, so nothing of it may live on the task.
    net::post(pool_, [this, t, id, job = fn] {
        job();
        net::post(ioc_, [this, t, id] { wake(t, id, woke::ready); });
    });
    try {
        suspend(*t);
    } catch (...) {
        ++t->wait_id;
        throw;
    }
}

uint64_t hub::current_token() const noexcept { return current_ ? current_->token : 0; }

woke hub::wait_wakeup(deadline until) {
    auto t = current_;
    if (t->killed) throw killed();
    if (std::exchange(t->wakeup_pending, false)) return woke::ready;
    uint64_t id = t->wait_id;
    if (until != no_deadline) {
        t->timer.expires_at(until);
        t->timer.async_wait([this, t, id](boost::system::error_code ec) {
            if (!ec) wake(t, id, woke::timeout);
        });
    }
    t->in_wait_wakeup = true;
    try {
        suspend(*t);
    } catch (...) {
        t->in_wait_wakeup = false;
        ++t->wait_id;
        t->timer.cancel();
        throw;
    }
    t->in_wait_wakeup = false;
    if (until != no_deadline) t->timer.cancel();
    return t->why;
}

void hub::wakeup(uint64_t token) {
    // Posted even from a child of this hub: only a handler switches into a greenlet (DESIGN §3.1 (8)).
    net::post(ioc_, [this, token] {
        auto t = find_job(token);
        if (!t) return;
        if (t->in_wait_wakeup) wake(t, t->wait_id, woke::ready);
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
    if (t && t->in_wait && !t->throw_in) {
        t->throw_in = std::move(it->second.exception);
        throws_.erase(it);
        resume(t);  // the wait unwinds (its catch drops its own completions by wait id) with the exception
        return;
    }
    py::gil_release::hold gil(*unlocked_);  // not waiting (or finished): drop the exception
    throws_.erase(it);
}

}  // namespace gcorn::hub
