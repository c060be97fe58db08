#include "worker/deadlines.hpp"

#include <algorithm>
#include <csignal>
#include <sys/socket.h>

#include <spdlog/spdlog.h>

#include "http/response_writer.hpp"
#include "hub/hub.hpp"
#include "py/gil.hpp"
#include "py/object.hpp"
#include "sys/scoreboard.hpp"

namespace gcorn::worker {
namespace {

// Under sync, a signal to the main thread interrupts what the app is blocked in; its Python-level handler does
// nothing, but running it is bytecode, where the pending RequestTimeout is raised.
int interrupt_signal() { return SIGRTMIN + 2; }

py::object request_timeout_type() {
    static py::object* t = new py::object(py::import("gcorn").attr("RequestTimeout"));  // never destroyed
    return *t;
}

}  // namespace

// ---- async ----

green_deadlines::green_deadlines(std::chrono::milliseconds period) : period_(period) {}

green_deadlines::~green_deadlines() {
    if (timer_) timer_->cancel();
}

void green_deadlines::arm(request_clock& c, int64_t deadline_ns) {
    auto* h = hub::hub::current();
    if (!h || !h->in_child()) return;
    c.deadline_ns = deadline_ns;
    c.token = h->current_token();
    if (!c.linked) {
        c.prev = nullptr;
        c.next = first_;
        if (first_) first_->prev = &c;
        first_ = &c;
        c.linked = true;
    }
    if (!timer_) {
        timer_ = std::make_unique<boost::asio::steady_timer>(h->context());
        tick();
    }
}

void green_deadlines::disarm(request_clock& c) {
    c.deadline_ns = 0;
    if (!c.linked) return;
    (c.prev ? c.prev->next : first_) = c.next;
    if (c.next) c.next->prev = c.prev;
    c.linked = false;
}

// On the hub, between greenlets (tick() takes the GIL itself: a handler run while the hub waits in epoll has none).
void green_deadlines::tick() {
    timer_->expires_after(period_);
    timer_->async_wait([this](boost::system::error_code ec) {
        if (ec) return;
        auto* h = hub::hub::current();
        int64_t now = sys::monotonic_ns();
        for (auto* c = first_; c;) {
            auto* next = c->next;
            if (c->deadline_ns && c->deadline_ns <= now) {
                disarm(*c);
                py::gil_acquire gil;
                auto exception = request_timeout_type()({py::str("the request outlived its deadline")});
                h->throw_later(c->token, hub::clock::now(), exception);
            }
            c = next;
        }
        tick();
    });
}

// ---- sync and gthread ----

thread_deadlines::thread_deadlines(bool app_on_main_thread) : main_thread_(app_on_main_thread) {
    request_timeout_type();  // imported now, with the GIL, not by the watchdog in a hurry
    if (main_thread_) {
        auto signal = py::import("signal");
        signal.attr("signal")({py::integer(interrupt_signal()), py::import("gcorn._inspect").attr("ignore_signal")});
        signal.attr("siginterrupt")({py::integer(interrupt_signal()), py::boolean(true)});
    }
    thread_ = std::thread([this] { watch(); });
}

thread_deadlines::~thread_deadlines() {
    {
        std::lock_guard lock(m_);
        done_ = true;
    }
    wake_.notify_all();
    py::join_without_gil(thread_);  // the watchdog may be waiting for the GIL to raise a timeout
}

void thread_deadlines::arm(request_clock& c, int64_t deadline_ns) {
    {
        std::lock_guard lock(m_);
        c.deadline_ns = deadline_ns;
        c.arm_id = ++last_arm_id_;
        c.fired = false;
        c.py_thread = py::thread_ident();
        c.thread = ::pthread_self();
        armed_.insert(&c);
    }
    wake_.notify_all();
}

void thread_deadlines::disarm(request_clock& c) {
    std::lock_guard lock(m_);
    armed_.erase(&c);
    c.deadline_ns = 0;
}

void thread_deadlines::watch() {
    std::unique_lock lock(m_);
    while (!done_) {
        int64_t now = sys::monotonic_ns(), next = 0;
        request_clock* due = nullptr;
        for (auto* c : armed_) {
            if (c->fired) continue;
            if (c->deadline_ns <= now) due = c;
            else if (!next || c->deadline_ns < next) next = c->deadline_ns;
        }
        if (due) {
            fire(*due);
            continue;
        }
        if (next) wake_.wait_for(lock, std::chrono::nanoseconds(next - now));
        else wake_.wait(lock);
    }
}

// With m_ held. Every arm() and disarm() runs with the GIL held and runs no bytecode, so while this thread holds
// the GIL nobody holds m_ and the request cannot finish under it. The request may have finished while this
// thread waited for the GIL: it raises only into the same arming of the same clock.
void thread_deadlines::fire(request_clock& c) {
    c.fired = true;
    auto id = c.arm_id;
    auto line = c.line;
    auto ident = c.py_thread;
    auto thread = c.thread;
    bool answered = false;
    if (c.plain && !c.claimed.exchange(true)) {  // the app has not started its response: answer in its place
        auto response = http::canned_response(504, "Gateway Timeout: the request outlived its deadline\n");
        answered = ::send(c.fd, response.data(), response.size(), MSG_NOSIGNAL | MSG_DONTWAIT) > 0;
        ::shutdown(c.fd, SHUT_WR);  // the app's own writes now fail: the connection closes when it returns
    }
    m_.unlock();
    {
        py::gil_acquire gil;
        // No bytecode runs in this thread between the check and the raise, so it keeps the GIL and the request
        // cannot finish in between. m_ is not held while Python runs below: Python hands the GIL over to other
        // threads every switch interval, and one of them may be waiting in arm() for m_.
        bool same_request;
        {
            std::lock_guard relock(m_);
            same_request = armed_.count(&c) && c.arm_id == id;  // else it finished meanwhile: nothing to raise
            if (same_request) armed_.erase(&c);
        }
        if (same_request) {
            py::raise_in_thread(ident, request_timeout_type());
            if (main_thread_) ::pthread_kill(thread, interrupt_signal());
            std::string stack;
            try {
                stack = py::str_of(py::import("gcorn._inspect").attr("thread_stack")({py::integer(long(ident))}));
            } catch (const py::python_error&) {
            }
            spdlog::error("Request timeout: {}{}; the app was at:\n{}", line,
                          answered ? " (answered 504)" : " (the connection is closed)", stack);
        }
    }
    m_.lock();
}

}  // namespace gcorn::worker
