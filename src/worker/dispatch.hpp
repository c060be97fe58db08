// How the reactor driver serves a connection that has a request in sight (DESIGN §2): the only difference
// between gthread and async. A dispatcher opens the connection's stream with its waiter, runs serve() off the
// reactor (a pool thread, or a pooled greenlet on the hub), hands the result back on the reactor's thread, and
// runs the reactor.
#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "hub/hub.hpp"
#include "worker/poll_waiter.hpp"
#include "worker/transport.hpp"

namespace gcorn::worker {

namespace net = boost::asio;

// `threads` OS threads, each registered with the interpreter once. A thread holds the GIL only while it runs
// a job, and the waits inside a job (poll_waiter) release it again.
class thread_pool {
public:
    explicit thread_pool(size_t n);
    ~thread_pool();
    void submit(std::function<void()> job);
    // Stops taking jobs; true once every thread has finished its current job and exited within `grace`.
    // PRECONDITION: the caller does not hold the GIL (exiting threads take it to drop their thread state).
    bool stop(std::chrono::milliseconds grace);

private:
    void work();
    void run_jobs();
    std::function<void()> take_queued();  // a job already waiting, or null

    std::mutex m_;
    std::condition_variable wake_, exited_;
    std::deque<std::function<void()>> jobs_;
    std::vector<std::thread> threads_;
    size_t alive_;
    bool done_ = false;
};

// gthread: serve() runs in a pool thread with the GIL (released around every wait); the result is posted back.
class thread_dispatch {
public:
    static constexpr bool multithread = true;  // wsgi.multithread: requests run on several threads at once
    static constexpr bool multithread_serving = true;  // serve() runs on several OS threads at once
    static constexpr int concurrency_hint = 1;         // the reactor's io_context: one thread runs it
    thread_dispatch(net::io_context& ioc, size_t threads) : ioc_(ioc), threads_(threads) {}

    std::unique_ptr<http::byte_stream> open(const transport& t, int fd, hub::edge_socket& socket) {
        return t.open(fd, poll_waiter{.socket = &socket});
    }
    // Runs serve_it() in a pool thread, then done(result) on the reactor's thread.
    template <class Serve, class Done>
    void dispatch(Serve serve_it, Done done) {
        pool_->submit([this, serve_it = std::move(serve_it), done = std::move(done)]() mutable {
            auto result = serve_it();
            net::post(ioc_, [done = std::move(done), result]() mutable { done(result); });
        });
    }
    // Runs the reactor with the GIL released (the pool threads take it in turn). After a stop, `busy_cut()`
    // ends requests stuck on their client and returns how long the others may take to finish.
    void run(const std::function<std::chrono::milliseconds()>& busy_cut);
    size_t greenlets() const { return 0; }

private:
    net::io_context& ioc_;
    size_t threads_;
    thread_pool* pool_ = nullptr;
};

// async: serve() runs in a pooled greenlet on the hub (the reactor's own thread); waits park the greenlet.
class green_dispatch {
public:
    // wsgi.multithread, as Gunicorn's gevent worker sets it: requests run concurrently in one process, so an app
    // must not keep per-request state in globals.
    static constexpr bool multithread = true;
    static constexpr bool multithread_serving = false;  // every greenlet runs on the hub's thread
    // Every socket operation starts and completes on the hub's thread (pool threads only post back to it): the
    // reactor needs no lock per descriptor operation. Posting and timers keep theirs.
    static constexpr int concurrency_hint = BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO;
    // PRECONDITION: GIL held (the hub takes the interpreter's greenlet API).
    explicit green_dispatch(net::io_context& ioc) : hub_(ioc) {}

    std::unique_ptr<http::byte_stream> open(const transport& t, int fd, hub::edge_socket& socket) {
        return t.open(fd, waiter{&hub_, &socket});
    }
    template <class Serve, class Done>
    void dispatch(Serve serve_it, Done done) {
        hub_.spawn([serve_it = std::move(serve_it), done = std::move(done)]() mutable { done(serve_it()); });
    }
    void run(const std::function<std::chrono::milliseconds()>&) { hub_.run(); }
    size_t greenlets() const { return hub_.live_greenlets(); }
    hub::hub& hub() { return hub_; }

private:
    // Park this greenlet until the hub sees the socket ready. A kill (worker stopping) ends the connection: the
    // one place hub::killed becomes a stream_error.
    struct waiter {
        hub::hub* h;
        hub::edge_socket* socket;
        // After EAGAIN (socket_stream, tls_stream): the wait needs no re-arm.
        bool wait(int, bool writable, http::deadline until) { return wait_as(writable, hub::edge_socket::known::fresh, until); }
        // With no read just before it (waiting for a PROXY header): what the last read noted.
        bool wait_readable(int, http::deadline until) { return wait_as(false, socket->input(), until); }
        void note_read(bool drained) { socket->note_read(drained); }
        hub::send_ring* sends() { return h->sends(); }
        // Until the reactor has sent the rest of `box` (hub/send_ring): false at the deadline.
        bool wait_drained(hub::outbox& box, http::deadline until);
        void yield();
        bool wait_as(bool writable, hub::edge_socket::known k, http::deadline until);
    };

    hub::hub hub_;
};

}  // namespace gcorn::worker
