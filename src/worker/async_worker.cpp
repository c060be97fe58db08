#include "worker/async_worker.hpp"

#include <list>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "hooks/hooks.hpp"
#include "hub/hub.hpp"
#include "hub/primitives.hpp"
#include "log/log.hpp"
#include "worker/serve.hpp"
#include "worker/signals.hpp"
#include "worker/transport.hpp"

namespace gcorn::worker {
namespace net = boost::asio;
using namespace std::chrono_literals;

namespace {

// The async worker's way of waiting: park this greenlet until the hub sees the socket ready.
struct green_waiter {
    hub::hub* h;
    net::posix::stream_descriptor* socket;

    bool wait(int, bool writable, http::deadline until) {
        hub::woke r;
        try {
            r = h->wait(*socket, writable ? net::posix::descriptor_base::wait_write : net::posix::descriptor_base::wait_read,
                        until);
        } catch (const hub::killed&) {
            throw http::stream_error(http::stream_error::kind::closed, "worker stopping");
        }
        if (r == hub::woke::cancelled) throw http::stream_error(http::stream_error::kind::closed, "connection closed");
        return r == hub::woke::ready;
    }
    void yield() {
        try {
            h->yield();
        } catch (const hub::killed&) {
            throw http::stream_error(http::stream_error::kind::closed, "worker stopping");
        }
    }
};

// One connection: its socket (registered with the reactor once), the stream and request reader that live as
// long as it does, and the timer bounding its idle wait in the hub.
struct connection {
    connection(net::io_context& ioc, hub::hub& h, int fd, const serve_options& opt, const transport& t,
               wsgi::connection_info i)
        : socket(ioc, fd), stream(t.open(fd, green_waiter{&h, &socket})), reader(*stream, opt.limits, opt.io_timeout),
          timer(ioc), info(std::move(i)) {}
    net::posix::stream_descriptor socket;  // owns and closes the fd
    std::unique_ptr<http::byte_stream> stream;  // plain or TLS
    http::request_reader reader;
    net::steady_timer timer;
    wsgi::connection_info info;
    std::list<std::shared_ptr<connection>>::iterator self;
    uint64_t wait_id = 0;  // bumped when the idle wait ends, so its other half is ignored
    bool waiting = false;  // waiting in the hub, without a greenlet, for its next request
    bool idle = false;     // in a greenlet, waiting inside read_head
    bool served = false;
};

class async_worker {
public:
    async_worker(const sys::worker_args& args, const wsgi::application& app, const transport& t)
        : args_(args), s_(args.settings), app_(app), t_(t), hub_(ioc_, 10), opt_(serve_options::from(s_, true)) {
        state_.max_requests = args.max_requests;
        state_.slot = &args.slot;
        opt_.return_when_idle = true;
    }

    int run() {
        for (size_t i = 0; i < args_.listeners.size(); ++i) net::co_spawn(ioc_, accept_loop(i), net::detached);
        net::co_spawn(ioc_, signal_loop(), net::detached);
        net::co_spawn(ioc_, heartbeat_loop(), net::detached);
        spdlog::debug("Worker {} ready (async, {} connections)", ::getpid(), s_.worker_connections);
        hub_.run();
        if (state_.exhausted()) spdlog::info("Autorestarting worker after current request.");
        spdlog::info("Worker exiting (pid: {})", ::getpid());
        return 0;
    }

private:
    // Accepts while under worker_connections; at the cap, waits until a connection ends.
    net::awaitable<void> accept_loop(size_t index) {
        auto& l = args_.listeners[index];
        net::posix::stream_descriptor listener(ioc_, l.fd.get());
        for (;;) {
            while (open_ >= size_t(s_.worker_connections) && !stopping()) {
                capacity_.expires_at(net::steady_timer::time_point::max());
                boost::system::error_code ec;
                co_await capacity_.async_wait(net::redirect_error(net::use_awaitable, ec));
            }
            if (stopping()) break;
            boost::system::error_code ec;
            co_await listener.async_wait(net::posix::descriptor_base::wait_read, net::redirect_error(net::use_awaitable, ec));
            if (ec || stopping()) break;
            // Other workers compete for the same queue: accept until it is empty or we are full.
            while (open_ < size_t(s_.worker_connections) && !stopping()) {
                int fd = ::accept4(l.fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) break;
                start_connection(fd, l);
            }
        }
        listener.release();  // the listening fd is the master's, shared by every worker
    }

    void start_connection(int fd, const sys::listener& l) {
        ++open_;
        if (!l.is_unix) {
            int one = 1;  // responses leave in one write; do not let Nagle hold back a streamed chunk
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        auto c = std::make_shared<connection>(ioc_, hub_, fd, opt_, t_, t_.describe(fd, l));
        c->self = connections_.insert(connections_.end(), c);
        wait_for_request(c, std::chrono::steady_clock::now() + opt_.head_timeout);
    }

    // A connection with no request in sight waits here, in the hub, holding no greenlet and no buffer
    // (DESIGN §3.1 (15)); a greenlet is taken from the pool only once bytes arrive.
    void wait_for_request(const std::shared_ptr<connection>& c, std::chrono::steady_clock::time_point until) {
        c->waiting = true;
        uint64_t id = ++c->wait_id;
        c->socket.async_wait(net::posix::descriptor_base::wait_read, [this, c, id](boost::system::error_code ec) {
            if (c->wait_id != id) return;
            ++c->wait_id, c->waiting = false;
            c->timer.cancel();
            if (ec) return close(c);
            hub_.spawn([this, c] { run_connection(c); });  // even when stopping: answered with Connection: close
        });
        arm_idle_deadline(c, until);
    }

    void arm_idle_deadline(const std::shared_ptr<connection>& c, std::chrono::steady_clock::time_point until) {
        uint64_t id = c->wait_id;
        c->timer.expires_at(until);
        c->timer.async_wait([this, c, id](boost::system::error_code ec) {
            if (ec || c->wait_id != id) return;
            ++c->wait_id, c->waiting = false;
            c->socket.cancel();
            close(c);  // idle past keepalive (or no first request within the head timeout)
        });
    }

    // In a greenlet: serve until the connection closes or goes idle again.
    void run_connection(const std::shared_ptr<connection>& c) {
        bool fresh = !c->served;
        green_waiter waiter{&hub_, &c->socket};
        if (fresh && !t_.prepare(c->socket.native_handle(), *c->stream, waiter, c->info, clock_now() + opt_.head_timeout))
            return close(c);  // no PROXY header or no TLS handshake: nothing to answer
        auto r = serve(*c->stream, c->reader, app_, c->info, opt_, state_, fresh, &c->idle);
        while (r == after::idle && !stopping() && transport::has_buffered_input(*c->stream))  // TLS: not on the socket
            r = serve(*c->stream, c->reader, app_, c->info, opt_, state_, false, &c->idle);
        c->served = true;
        args_.slot.requests.store(state_.requests, std::memory_order_relaxed);
        if (r == after::idle && !stopping()) return wait_for_request(c, std::chrono::steady_clock::now() + opt_.keepalive);
        close(c);
    }

    void close(const std::shared_ptr<connection>& c) {
        connections_.erase(c->self);
        --open_;
        capacity_.cancel();
        if (state_.exhausted()) begin_stop(true);
        if (stopping() && open_ == 0) ioc_.stop();
    }

    // One named handler per signal: TERM/QUIT graceful, USR1 reopen logs (INT exits in the handler).
    net::awaitable<void> signal_loop() {
        int fd = install_worker_signals(hooks::configured(s_, "worker_int"));
        net::posix::stream_descriptor pipe(ioc_, fd);
        for (;;) {
            boost::system::error_code ec;
            co_await pipe.async_wait(net::posix::descriptor_base::wait_read, net::redirect_error(net::use_awaitable, ec));
            if (ec) break;
            drain_signals(fd, [&](int sig) {
                if (sig == SIGINT) fast_exit();
                if (sig == SIGUSR1) log::reopen();
                else begin_stop(true);
            });
        }
        pipe.release();
    }

    // The hub beats only when it gets control back, so a greenlet that never yields stops the beat and the
    // master kills the worker after `timeout` (DESIGN §3 Fairness).
    net::awaitable<void> heartbeat_loop() {
        net::steady_timer t(ioc_);
        auto every = std::chrono::milliseconds(s_.timeout > 0 ? std::clamp(int(s_.timeout * 250), 50, 1000) : 1000);
        for (;;) {
            args_.slot.beat();
            if (::getppid() != args_.master_pid) {
                spdlog::info("Parent changed, shutting down: {}", ::getpid());
                begin_stop(false);
            }
            if (stopping() && clock_now() > stop_deadline_) {
                ioc_.stop();  // graceful_timeout passed: in-flight requests are cut off
                co_return;
            }
            t.expires_after(every);
            boost::system::error_code ec;
            co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
        }
    }

    void begin_stop(bool graceful) {
        if (!stop_deadline_.time_since_epoch().count())
            stop_deadline_ = clock_now() + std::chrono::milliseconds(int64_t((graceful ? s_.graceful_timeout : 0) * 1000));
        state_.stopping = true;
        capacity_.cancel();
        // Busy connections finish their request (answered with Connection: close). Idle keep-alive ones get a
        // short last call (keepalive, at most 2 s) for a request that may already be in flight, also answered with
        // Connection: close: closing them at once would fail that request (zero-downtime restarts, issue 3).
        auto last_call = clock_now() + std::min<std::chrono::milliseconds>(opt_.keepalive, 2s);
        for (auto& c : connections_)
            if (c->waiting && c->timer.expiry() > last_call) arm_idle_deadline(c, last_call);
        if (open_ == 0) ioc_.stop();
    }

    bool stopping() const { return state_.stopping; }
    static std::chrono::steady_clock::time_point clock_now() { return std::chrono::steady_clock::now(); }

    const sys::worker_args& args_;
    const config::settings& s_;
    const wsgi::application& app_;
    const transport& t_;
    net::io_context ioc_{1};
    hub::hub hub_;
    serve_options opt_;
    serve_state state_;
    size_t open_ = 0;
    std::list<std::shared_ptr<connection>> connections_;
    net::steady_timer capacity_{ioc_};
    std::chrono::steady_clock::time_point stop_deadline_{};
};

}  // namespace

int run_async(const sys::worker_args& args, const wsgi::application& app, const transport& t) {
    return async_worker(args, app, t).run();
}

}  // namespace gcorn::worker
