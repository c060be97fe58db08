#include "worker/gthread_worker.hpp"

#include <algorithm>
#include <condition_variable>
#include <csignal>
#include <deque>
#include <functional>
#include <list>
#include <mutex>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "hooks/hooks.hpp"
#include "log/log.hpp"
#include "py/gil.hpp"
#include "worker/poll_waiter.hpp"
#include "worker/serve.hpp"
#include "worker/signals.hpp"
#include "worker/transport.hpp"

namespace gcorn::worker {
namespace net = boost::asio;
using namespace std::chrono_literals;

namespace {

using clock = std::chrono::steady_clock;

// `threads` OS threads, each registered with the interpreter once. A thread holds the GIL only while it runs
// a job, and the waits inside a job (poll_waiter) release it again.
class thread_pool {
public:
    explicit thread_pool(size_t n) : alive_(n) {
        for (size_t i = 0; i < n; ++i) threads_.emplace_back([this] { work(); });
    }

    ~thread_pool() {
        if (!stop(10s))
            for (auto& t : threads_) t.detach();  // stuck in application code: the process exits without them
    }

    void submit(std::function<void()> job) {
        {
            std::lock_guard lock(m_);
            jobs_.push_back(std::move(job));
        }
        wake_.notify_one();
    }

    // Stops taking jobs; true once every thread has finished its current job and exited within `grace`.
    // PRECONDITION: the caller does not hold the GIL (exiting threads take it to drop their thread state).
    bool stop(std::chrono::milliseconds grace) {
        std::unique_lock lock(m_);
        done_ = true;
        wake_.notify_all();
        if (!exited_.wait_for(lock, grace, [&] { return alive_ == 0; })) return false;
        lock.unlock();
        for (auto& t : threads_)
            if (t.joinable()) t.join();
        return true;
    }

private:
    void work() {
        run_jobs();
        std::lock_guard lock(m_);
        --alive_;
        exited_.notify_all();
    }

    void run_jobs() {
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
        }
    }

    std::mutex m_;
    std::condition_variable wake_, exited_;
    std::deque<std::function<void()>> jobs_;
    std::vector<std::thread> threads_;
    size_t alive_;
    bool done_ = false;
};

// One connection. The reactor thread owns it while it waits for a request, one pool thread while it is served;
// it changes hands through the pool's queue and net::post, never used by both at once.
struct connection {
    connection(net::io_context& ioc, int fd, const serve_options& opt, const transport& t, wsgi::connection_info i)
        : socket(ioc, fd), stream(t.open(fd, poll_waiter{})), reader(*stream, opt.limits, opt.io_timeout),
          timer(ioc), info(std::move(i)) {}
    net::posix::stream_descriptor socket;  // owns and closes the fd
    std::unique_ptr<http::byte_stream> stream;  // plain or TLS
    http::request_reader reader;
    net::steady_timer timer;  // bounds the idle wait on the reactor
    wsgi::connection_info info;
    std::list<std::shared_ptr<connection>>::iterator self;
    uint64_t wait_id = 0;  // bumped when the idle wait ends, so its other half is ignored
    bool waiting = false;  // on the reactor, holding no thread, for its next request
    bool served = false;
};

class gthread_worker {
public:
    gthread_worker(const sys::worker_args& args, const wsgi::application& app, const transport& t)
        : args_(args), s_(args.settings), app_(app), t_(t), opt_(serve_options::from(s_, true)) {
        state_.max_requests = args.max_requests;
        state_.slot = &args.slot;
        opt_.return_when_idle = true;
    }

    int run() {
        for (size_t i = 0; i < args_.listeners.size(); ++i) net::co_spawn(ioc_, accept_loop(i), net::detached);
        net::co_spawn(ioc_, signal_loop(), net::detached);
        net::co_spawn(ioc_, heartbeat_loop(), net::detached);
        spdlog::debug("Worker {} ready (gthread, {} threads, {} connections)", ::getpid(), s_.threads,
                      s_.worker_connections);
        {
            py::gil_release unlocked;  // the pool threads take the GIL in turn; the reactor never needs it
            thread_pool pool(size_t(s_.threads));
            pool_ = &pool;
            ioc_.run();
            if (!pool.stop(stop_grace())) abandon_busy_threads();
            pool_ = nullptr;
        }
        if (exhausted()) spdlog::info("Autorestarting worker after current request.");
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
        auto info = t_.describe(fd, l);
        info.multithread = true;
        auto c = std::make_shared<connection>(ioc_, fd, opt_, t_, std::move(info));
        c->self = connections_.insert(connections_.end(), c);
        wait_for_request(c, clock::now() + opt_.head_timeout);
    }

    // A connection with no request in sight waits here, on the reactor, holding no thread and no buffer; it
    // goes to the pool once bytes arrive.
    void wait_for_request(const std::shared_ptr<connection>& c, clock::time_point until) {
        c->waiting = true;
        uint64_t id = ++c->wait_id;
        c->socket.async_wait(net::posix::descriptor_base::wait_read, [this, c, id](boost::system::error_code ec) {
            if (c->wait_id != id) return;
            ++c->wait_id, c->waiting = false;
            c->timer.cancel();
            if (ec) return close(c);
            // Even when stopping: a request that reached us is answered (with Connection: close).
            pool_->submit([this, c]() mutable { run_connection(std::move(c)); });
        });
        arm_idle_deadline(c, until);
    }

    void arm_idle_deadline(const std::shared_ptr<connection>& c, clock::time_point until) {
        uint64_t id = c->wait_id;
        c->timer.expires_at(until);
        c->timer.async_wait([this, c, id](boost::system::error_code ec) {
            if (ec || c->wait_id != id) return;
            ++c->wait_id, c->waiting = false;
            c->socket.cancel();
            close(c);  // idle past keepalive (or no first request within the head timeout)
        });
    }

    // In a pool thread, GIL held: the PROXY header and TLS handshake of a new connection, then requests until
    // it closes or goes idle. serve_state is shared by the pool threads; the GIL serialises their updates.
    void run_connection(std::shared_ptr<connection> c) {
        bool fresh = !c->served;
        poll_waiter waiter;
        after r = after::closed;
        if (!fresh || t_.prepare(c->socket.native_handle(), *c->stream, waiter, c->info, clock::now() + opt_.head_timeout)) {
            r = serve(*c->stream, c->reader, app_, c->info, opt_, state_, fresh);
            while (r == after::idle && !stopping() && transport::has_buffered_input(*c->stream))  // TLS: not on the socket
                r = serve(*c->stream, c->reader, app_, c->info, opt_, state_, false);
        }
        c->served = true;
        args_.slot.requests.store(state_.requests, std::memory_order_relaxed);
        // Back to the reactor thread, which alone touches the connection list, timers and waits.
        net::post(ioc_, [this, c = std::move(c), r] {
            if (r == after::idle && !stopping()) return wait_for_request(c, clock::now() + opt_.keepalive);
            close(c);
        });
    }

    void close(const std::shared_ptr<connection>& c) {
        connections_.erase(c->self);
        --open_;
        capacity_.cancel();
        if (exhausted()) begin_stop(true);
        if (stopping() && open_ == 0) ioc_.stop();
    }

    // One named handler per signal: TERM/QUIT graceful, USR1 reopen logs, INT (queued for a worker_int hook)
    // exits at once.
    net::awaitable<void> signal_loop() {
        int fd = install_worker_signals(hooks::configured(s_, "worker_int"));
        net::posix::stream_descriptor pipe(ioc_, fd);
        for (;;) {
            boost::system::error_code ec;
            co_await pipe.async_wait(net::posix::descriptor_base::wait_read, net::redirect_error(net::use_awaitable, ec));
            if (ec) break;
            drain_signals(fd, [&](int sig) {
                if (sig == SIGINT) on_int();
                if (sig == SIGUSR1) log::reopen();
                else begin_stop(true);
            });
        }
        pipe.release();
    }

    [[noreturn]] static void on_int() {
        py::gil_acquire held;  // the worker_int hook is Python
        fast_exit();
    }

    // The reactor beats independently of the pool, so (as Gunicorn's gthread worker) a slow request does not
    // make the master kill the worker; a stuck reactor does.
    net::awaitable<void> heartbeat_loop() {
        net::steady_timer t(ioc_);
        auto every = std::chrono::milliseconds(s_.timeout > 0 ? std::clamp(int(s_.timeout * 250), 50, 1000) : 1000);
        for (;;) {
            args_.slot.beat();
            if (::getppid() != args_.master_pid) {
                spdlog::info("Parent changed, shutting down: {}", ::getpid());
                begin_stop(false);
            }
            if (stopping() && clock::now() > stop_deadline_) {
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
            stop_deadline_ = clock::now() + std::chrono::milliseconds(int64_t((graceful ? s_.graceful_timeout : 0) * 1000));
        state_.stopping = true;
        capacity_.cancel();
        // Busy connections finish their request (answered with Connection: close); idle keep-alive ones get a
        // short last call for a request that may already be in flight, as in the async worker.
        auto last_call = clock::now() + std::min<std::chrono::milliseconds>(opt_.keepalive, 2s);
        for (auto& c : connections_)
            if (c->waiting && c->timer.expiry() > last_call) arm_idle_deadline(c, last_call);
        if (open_ == 0) ioc_.stop();
    }

    // After a stop cut off at graceful_timeout, threads may still be inside requests. Shutting their sockets
    // down ends those blocked on the client; the grace bounds how long the others may take.
    std::chrono::milliseconds stop_grace() {
        if (open_ == 0) return 10s;  // every job has posted its result: the threads are only finishing up
        for (auto& c : connections_)
            if (!c->waiting) ::shutdown(c->socket.native_handle(), SHUT_RDWR);
        return 1s;
    }

    // Threads stuck in application code cannot be joined, and Python cannot be finalised under them.
    [[noreturn]] void abandon_busy_threads() {
        spdlog::warn("Worker exiting with requests still running (pid: {})", ::getpid());
        spdlog::default_logger()->flush();
        ::_exit(0);
    }

    bool stopping() const { return state_.stopping; }
    bool exhausted() const {
        return args_.max_requests && args_.slot.requests.load(std::memory_order_relaxed) >= args_.max_requests;
    }

    const sys::worker_args& args_;
    const config::settings& s_;
    const wsgi::application& app_;
    const transport& t_;
    net::io_context ioc_{1};  // run by the main thread only; pool threads post to it
    serve_options opt_;
    serve_state state_;
    thread_pool* pool_ = nullptr;
    size_t open_ = 0;
    std::list<std::shared_ptr<connection>> connections_;
    net::steady_timer capacity_{ioc_};
    clock::time_point stop_deadline_{};
};

}  // namespace

int run_gthread(const sys::worker_args& args, const wsgi::application& app, const transport& t) {
    return gthread_worker(args, app, t).run();
}

}  // namespace gcorn::worker
