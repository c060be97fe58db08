// The reactor driver (DESIGN §2), one for gthread and async: an Asio reactor in the worker accepts while under
// worker_connections; a connection with no request in sight waits on the reactor holding no thread, greenlet or
// buffer; once bytes arrive the dispatcher serves it (a pool thread, or a pooled greenlet); a stop gives idle
// connections a last call. The two classes differ only in their Dispatch (worker/dispatch.hpp).
#include <cerrno>
#include <algorithm>
#include <deque>
#include <list>
#include <memory>
#include <optional>
#include <type_traits>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/intrusive/list.hpp>
#include <spdlog/spdlog.h>

#include "hub/deadline_wait.hpp"
#include "log/log.hpp"
#include "worker/accept_pause.hpp"
#include "worker/base.hpp"
#include "worker/dispatch.hpp"
#include "worker/drivers.hpp"
#include "worker/incoming_head.hpp"
#include "worker/watchdog.hpp"
#include "worker/signals.hpp"

namespace gcorn::worker {
namespace {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;
using wait_type = net::posix::descriptor_base::wait_type;

// A stop's last call for idle keep-alive connections is `keepalive`, but at most this: a request already on its
// way gets answered (with Connection: close), without holding a stop up for long.
constexpr std::chrono::milliseconds max_last_call = 2s;
// After a stop cut off at graceful_timeout, requests still running get this long once their sockets are shut.
constexpr std::chrono::milliseconds cut_grace = 1s;

// One connection on the reactor. The reactor's thread owns it while it waits for a request, the dispatcher
// while it is served; it changes hands through dispatch() and its completion, never used by both at once.
struct session {
    template <class Dispatch>
    session(net::io_context& ioc, int fd, Dispatch& d, const transport& t, wsgi::connection_info info,
            const serve_options& opt)
        : socket(ioc, fd), idle(ioc.get_executor()), conn(fd, d.open(t, fd, socket), std::move(info), opt),
          head(opt.limits) {}
    hub::edge_socket socket;               // owns and closes the fd; declared first, so it closes last
    hub::deadline_wait idle;               // its wait for the next request, on the reactor
    connection conn;
    incoming_head head;                    // the next request's head while it arrives, read on the reactor
    std::list<std::shared_ptr<session>>::iterator self;
    // While it waits between keep-alive requests: its place in the reactor's idle list, and when it times out.
    boost::intrusive::list_member_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>> idle_hook;
    clock::time_point idle_until;
    bool output_grace = false;  // its keep-alive wait was extended for a response still going out
    bool closing = false;       // closes once its last response is out
};

// Connections waiting between keep-alive requests, oldest first. They all wait `keepalive` from the moment they
// went idle, so this order is also their deadlines' order: one timer, at the front's deadline, stands for all of
// them, instead of one timer per connection armed and cancelled around every request (a heap of 10,000 timers
// at 10,000 connections, and a cancelled timer's completion to run each time).
using idle_list = boost::intrusive::list<
    session, boost::intrusive::member_hook<session, decltype(session::idle_hook), &session::idle_hook>,
    boost::intrusive::constant_time_size<false>>;

template <class Dispatch>
class reactor_worker final : public worker_base {
public:
    template <class... DispatchArgs>
    reactor_worker(const sys::worker_args& args, const wsgi::application& app, const transport& t, DispatchArgs... a)
        : worker_base(args, app, t, true), dispatch_(ioc_, a...),
          driver_reads_heads_(incoming_head::driver_reads_heads(s_)) {
        metrics().shared_writers = Dispatch::multithread_serving;
        if constexpr (std::is_same_v<Dispatch, green_dispatch>) {
            // Every request ends on the hub's thread: its access line waits for the hub's next wait (one write
            // per batch of requests, not per request). gthread's pool threads write theirs as they come.
            if (log::access_enabled()) {
                log::batch_access(true);
                dispatch_.hub().before_wait(&log::flush_access);
                quick_stop_through_thread();  // QUIT writes the held lines before the exit
            }
            if (s_.block_warning > 0 && !dispatch_.hub().runs_gevent()) {
                watchdog_.emplace(dispatch_.hub(), args_.slot, std::chrono::milliseconds(s_.block_warning));
                state_.label_hub = &dispatch_.hub();
            }
        }
    }

private:
    void loop() override {
        for (auto& l : args_.listeners) net::co_spawn(ioc_, accept_loop(l), net::detached);
        net::co_spawn(ioc_, signal_loop(), net::detached);
        net::co_spawn(ioc_, heartbeat_loop(), net::detached);
        dispatch_.run([this] { return cut_busy(); });
    }

    // Accepts while under worker_connections; at the cap, waits until a connection ends. Out of file
    // descriptors, pauses until a connection ends or a back-off passes (accept_pause).
    net::awaitable<void> accept_loop(const sys::listener& l) {
        net::posix::stream_descriptor listener(ioc_, l.fd.get());
        auto& pause = pauses_.emplace_back(ioc_);  // this loop's own: one timer shared by two loops would cancel
        accept_pause out_of_fds;                   // the other's wait each time one of them starts a wait
        for (boost::system::error_code ec; !stopping();) {
            if (open_ >= cap() || admission_full()) {
                pause.expires_at(net::steady_timer::time_point::max());
                co_await pause.async_wait(net::redirect_error(net::use_awaitable, ec));
                continue;
            }
            co_await listener.async_wait(wait_type::wait_read, net::redirect_error(net::use_awaitable, ec));
            if (ec) break;
            // Other workers compete for the same queue: accept until it is empty or we are full.
            int error = 0;
            while (open_ < cap() && !admission_full() && !stopping()) {
                sys::endpoint peer;
                int fd = sys::accept_connection(l, peer);
                if (fd < 0) {
                    if (errno == EINTR) continue;
                    error = errno;  // EAGAIN: the queue is empty (or another worker took it)
                    break;
                }
                out_of_fds.succeeded();
                start(fd, std::move(peer), l);
            }
            // The listener stays readable while the queue waits for a descriptor: do not go straight back.
            if (error && out_of_fds.failed(error)) {
                pause.expires_after(out_of_fds.delay());
                co_await pause.async_wait(net::redirect_error(net::use_awaitable, ec));
            }
        }
        listener.release();  // the listening fd is the master's, shared by every worker
    }

    void start(int fd, sys::endpoint peer, const sys::listener& l) {
        ++open_;
        metrics().connections_open.store(uint32_t(open_), std::memory_order_relaxed);
        metrics().add(sys::metrics::at::connections);
        auto info = t_.adopt(fd, std::move(peer), l, opt_.keepalive_allowed);
        info.multithread = Dispatch::multithread;
        auto s = std::make_shared<session>(ioc_, fd, dispatch_, t_, std::move(info), opt_);
        s->self = sessions_.insert(sessions_.end(), s);
        s->conn.ready_at = clock::now();  // queue time starts at accept
        wait_for_request(s, s->conn.ready_at + opt_.head_timeout);
    }

    // A connection with no complete request head waits here, holding no greenlet, thread or buffer beyond the
    // bytes it sent (DESIGN §3.1 (15)): what arrives is read on the reactor, so a client trickling its head costs
    // nobody else (slowloris). Once the head is whole it is dispatched, even when stopping: a request that reached
    // us is answered (with Connection: close). Past `until` (keepalive or the head timeout before a first byte,
    // the head timeout for a whole head) a started head is answered 408, and the connection closed.
    // `in_idle_list`: a wait of exactly `keepalive` from now, timed by the idle list rather than a timer of its own.
    // A wait between keep-alive requests (counted in idle_), not one for a first request or the rest of a head.
    static bool between_requests(const session& s) { return s.conn.served_any && !s.head.started(); }

    void wait_for_request(const std::shared_ptr<session>& s, clock::time_point until, bool in_idle_list = false) {
        bool keepalive = between_requests(*s);
        if (keepalive) ++idle_, metrics().connections_idle.store(uint32_t(idle_), std::memory_order_relaxed);
        s->idle_hook.unlink();
        auto timer_until = until;
        if (in_idle_list) {
            s->idle_until = until;
            idle_list_.push_back(*s);
            arm_idle_timer();
            timer_until = hub::no_deadline;
        }
        // What the last read saw decides whether the wait must re-arm the socket (hub/edge_socket.hpp).
        s->idle.start([&socket = s->socket](auto handler) {
                          socket.async_wait(wait_type::wait_read, socket.input(), std::move(handler));
                      },
                      timer_until, [this, s = std::shared_ptr(s), keepalive, until](hub::woke why) {
                          idle_wait_over(s, keepalive, until, why);
                      });
    }

    void idle_wait_over(const std::shared_ptr<session>& s, bool keepalive, clock::time_point until, hub::woke why) {
        s->idle_hook.unlink();
        if (keepalive) {
            --idle_;
            metrics().connections_idle.store(uint32_t(idle_), std::memory_order_relaxed);
            // The next request arrived: its queue time starts when a poll saw it, or when the last request ended if
            // the wait found it without a poll (a peek after the app ran for a while: that poll is older).
            s->conn.ready_at = std::max(s->conn.ready_at, hub::polled_at());
        }
        // A keep-alive wait is counted from when the last response was handed over, which may still be going out to
        // a slow reader (hub/send_ring): it gets the write timeout a response sent at once would have had, once.
        if (why == hub::woke::timeout && keepalive && s->conn.stream->output_pending() && !s->output_grace) {
            s->output_grace = true;
            s->socket.cancel();  // the timed-out read wait is still queued: a second one would never complete
            return wait_for_request(s, clock::now() + opt_.io_timeout);
        }
        // A 408 goes straight to the socket: not into the middle of a response still going out.
        if (why == hub::woke::timeout && !s->conn.stream->output_pending()) s->head.time_out(s->socket.native_handle());
        if (why != hub::woke::ready) return close(s);
        s->output_grace = false;
        read_head(s, until);
    }

    void arm_idle_timer() {
        if (idle_timer_armed_ || idle_list_.empty()) return;
        idle_timer_armed_ = true;
        idle_timer_.expires_at(idle_list_.front().idle_until);
        idle_timer_.async_wait([this](boost::system::error_code ec) {
            idle_timer_armed_ = false;
            if (ec) return;
            // The front may have left the list meanwhile (its request came): only those past their deadline go.
            for (auto now = clock::now(); !idle_list_.empty() && idle_list_.front().idle_until <= now;) {
                auto s = *idle_list_.front().self;
                s->idle_hook.unlink();
                if (s->idle.settle()) idle_wait_over(s, true, s->idle_until, hub::woke::timeout);
            }
            arm_idle_timer();
        });
    }

    // The socket is readable: read what arrived of the head; dispatch a whole one, wait again for the rest.
    // (TLS and PROXY connections are dispatched at their first byte: serve() reads those heads.)
    void read_head(const std::shared_ptr<session>& s, clock::time_point until) {
        if (driver_reads_heads_) {
            bool first_bytes = !s->head.started();
            auto got = s->head.read_from(s->socket.native_handle());
            s->socket.note_read(s->head.drained());
            switch (got) {
                case incoming_head::state::gone: return close(s);
                case incoming_head::state::arriving:
                    // A kept-alive connection's next request began: its head has head_timeout from here.
                    if (first_bytes && s->conn.served_any) until = clock::now() + opt_.head_timeout;
                    return wait_for_request(s, until);
                case incoming_head::state::complete:
                    s->head.hand_to(s->conn.reader);
                    // Queue time starts once the request is whole (a kept-alive one's whole head just came: the
                    // time it was found readable, a moment ago, stands).
                    if (!first_bytes || !s->conn.served_any)
                        s->conn.ready_at = std::max(s->conn.ready_at, hub::polled_at());
                    break;
            }
        }
        if (max_in_flight_ && busy_ >= max_in_flight_) return admission_queue_.push_back(s);
        start_serving(s);
    }

    void start_serving(const std::shared_ptr<session>& s) {
        ++busy_;
        // Captured by init-capture: a plain [s] of a const reference would be a const member, which every move
        // of the handler copies (two atomic operations each).
        dispatch_.dispatch([this, s = std::shared_ptr(s)] { return serve(s->conn, app_, t_, opt_, state_); },
                           [this, s = std::shared_ptr(s)](served r) { finished(s, r); });
    }

    // max_in_flight: a connection that is not waiting between keep-alive requests counts as in flight from its
    // accept, so the worker stops accepting at N; a keep-alive connection whose next request comes while N run
    // waits its turn (admission_queue_), its queue time running.
    bool admission_full() const { return max_in_flight_ && open_ - idle_ >= max_in_flight_; }

    // Back on the reactor's thread after a dispatch: park the connection for its next request, or close it.
    void finished(const std::shared_ptr<session>& s, served r) {
        --busy_;
        if (!admission_queue_.empty()) {
            auto next = std::move(admission_queue_.front());
            admission_queue_.pop_front();
            start_serving(next);
        } else if (max_in_flight_) {
            for (auto& p : pauses_) p.cancel();  // the accept loops look again
        }
        if (r == served::idle && !stopping()) return wait_for_request(s, http::coarse_now() + opt_.keepalive, true);
        close(s);
    }

    void close(const std::shared_ptr<session>& s) {
        // The last response is still going out (a slow reader, batched sends): a greenlet sends the rest, within the
        // write timeout, and the connection closes after it.
        if (s->conn.stream->output_pending() && !s->closing) {
            s->closing = true;
            ++busy_;
            dispatch_.dispatch(
                [this, s = std::shared_ptr(s)] {
                    try {
                        s->conn.stream->flush_output(clock::now() + opt_.io_timeout);
                    } catch (const http::stream_error&) {
                    }
                    return served::closed;
                },
                [this, s = std::shared_ptr(s)](served r) { finished(s, r); });
            return;
        }
        s->socket.cancel();  // an idle wait's other half lets go of the session; its destructor closes the fd
        sessions_.erase(s->self);
        --open_;
        metrics().connections_open.store(uint32_t(open_), std::memory_order_relaxed);
        for (auto& p : pauses_) p.cancel();  // a paused accept loop: there is room, and a free descriptor
        check_exhausted();
        if (stopping() && open_ == 0) ioc_.stop();
    }

    // Busy connections finish their request (answered with Connection: close); idle ones get a last call for a
    // request that may already be on its way: closing them at once would fail it (zero-downtime restarts).
    void on_stop() override {
        for (auto& p : pauses_) p.cancel();
        auto last_call = clock::now() + std::min<std::chrono::milliseconds>(opt_.keepalive, max_last_call);
        for (auto& s : sessions_) {
            // A wait in the idle list has no timer of its own: its deadline is idle_until.
            auto expiry = s->idle_hook.is_linked() ? s->idle_until : s->idle.expiry();
            if (s->idle.active() && expiry > last_call) {
                s->idle.settle();  // its completion will not run: take it off the idle count here
                if (between_requests(*s)) --idle_;
                s->socket.cancel();
                wait_for_request(s, last_call);
            }
        }
        if (open_ == 0) ioc_.stop();
    }

    // After the reactor stopped with requests still running (graceful_timeout passed): shutting their sockets
    // down ends those blocked on the client; returns how long the others may take.
    std::chrono::milliseconds cut_busy() {
        if (open_ == 0) return 10s;  // every dispatch has completed: the threads are only finishing up
        for (auto& s : sessions_)
            if (!s->idle.active()) {
                ::shutdown(s->socket.native_handle(), SHUT_RDWR);
                metrics().add(sys::metrics::at::dropped);  // its request gets no response
            }
        return cut_grace;
    }

    net::awaitable<void> signal_loop() {
        net::posix::stream_descriptor pipe(ioc_, signal_fd());
        for (boost::system::error_code ec; !ec;) {
            co_await pipe.async_wait(wait_type::wait_read, net::redirect_error(net::use_awaitable, ec));
            take_signals();
        }
        pipe.release();
    }

    // The reactor beats only when it gets control back: a greenlet that never yields (async) or a stuck reactor
    // stops the beat and the master kills the worker after `timeout`; a slow request in a pool thread does not.
    // Each tick also samples the gauges, and a tick that fires late means the loop was blocked that long (a
    // greenlet that did not yield, or the reactor starved of the GIL): counted for the metrics.
    net::awaitable<void> heartbeat_loop() {
        net::steady_timer t(ioc_);
        for (boost::system::error_code ec;;) {
            notify();
            metrics().greenlets.store(uint32_t(dispatch_.greenlets()), std::memory_order_relaxed);
            if (stop_overdue()) {
                ioc_.stop();  // graceful_timeout passed: in-flight requests are cut off
                co_return;
            }
            t.expires_after(heartbeat_interval());
            co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
            auto late = std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - t.expiry()).count();
            if (late > sys::metrics::blocked_threshold_ns) {
                metrics().add(sys::metrics::at::blocked_ns, uint64_t(late));
                metrics().add(sys::metrics::at::blocked_episodes);
            }
        }
    }

    size_t cap() const { return size_t(s_.worker_connections); }
    sys::metrics::counters& metrics() { return args_.slot.counters; }

    net::io_context ioc_{Dispatch::concurrency_hint};  // run by this thread only; pool threads post to it
    Dispatch dispatch_;
    std::optional<hub_watchdog> watchdog_;  // async: --block-warning
    size_t open_ = 0;
    size_t idle_ = 0;  // keep-alive connections waiting for their next request
    size_t busy_ = 0;  // connections dispatched: a request of theirs is being served
    size_t max_in_flight_ = size_t(s_.max_in_flight);
    std::deque<std::shared_ptr<session>> admission_queue_;
    std::list<std::shared_ptr<session>> sessions_;
    std::list<net::steady_timer> pauses_;  // one per accept loop, woken when a connection ends
    idle_list idle_list_;                  // destroyed before sessions_; its hooks unlink themselves either way
    net::steady_timer idle_timer_{ioc_};   // at the idle list's front's deadline
    bool idle_timer_armed_ = false;
    const bool driver_reads_heads_;
};

}  // namespace

int run_gthread(const sys::worker_args& args, const wsgi::application& app, const transport& t) {
    return reactor_worker<thread_dispatch>(args, app, t, size_t(args.settings.threads)).run();
}

int run_async(const sys::worker_args& args, const wsgi::application& app, const transport& t) {
    return reactor_worker<green_dispatch>(args, app, t).run();
}

}  // namespace gcorn::worker
