// A connection's socket on the worker's reactor, registered once and waited on without re-arming (issue 14).
//
// Asio's epoll reactor registers every descriptor edge-triggered, but its async_wait re-arms the descriptor
// (EPOLL_CTL_MOD) at every wait: a wait knows nothing of the socket, so it must ask the kernel to report
// readiness that is already there. That is one epoll_ctl per keep-alive request. The code that reads the socket
// does know: after a read that drained it (EAGAIN, or fewer bytes than asked), any later byte raises a new edge,
// so a wait can be queued as it is. The caller says what it knows (`known`); when it knows nothing, the wait
// re-arms as Asio's does.
//
// Edge-triggered is only safe if no edge is lost between that read and the wait: an event the reactor takes while
// no wait is queued sets Asio's per-descriptor hint (try_speculative_), which makes the reactor run our
// operation's check at once when the wait starts. The check is then a one-byte MSG_PEEK (`drained`: an event may
// have come after the read), or nothing at all (`fresh`: the read saw EAGAIN just now and the reactor has not run
// since, so every later byte is a new edge). Plain Asio (its reactor interface, detail:: but stable in the pinned
// Boost 1.81): knows nothing of greenlets, HTTP or Python. With Asio's io_uring backend the reactor is not epoll:
// waits there are Asio's own.
#pragma once
#include <cerrno>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/descriptor_base.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/system/error_code.hpp>
#if !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT)
#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/detail/reactor_op.hpp>

#include "hub/recycler.hpp"
#endif

namespace gcorn::hub {

namespace net = boost::asio;

class edge_socket {
public:
    using wait_type = net::posix::descriptor_base::wait_type;
    // What the caller knows of the socket's input when it starts a read wait.
    enum class known {
        nothing,  // e.g. the last read filled its buffer: re-arm, as Asio does
        drained,  // the last read drained it, but the reactor may have run since
        fresh,    // a read (or a write, for a write wait) saw EAGAIN just now, and the reactor has not run since
    };

    // Takes `fd` (non-blocking) and closes it in the destructor. Throws boost::system::system_error.
    edge_socket(net::io_context& ioc, int fd);
    ~edge_socket();
    edge_socket(const edge_socket&) = delete;
    edge_socket& operator=(const edge_socket&) = delete;

    int native_handle() const noexcept { return fd_; }

    // What the last read of the socket saw: `drained` if EAGAIN or fewer bytes than asked. Any thread, as long as
    // the socket changes hands through the reactor (a post) between the reader and the waiter.
    void note_read(bool drained) noexcept { input_ = drained ? known::drained : known::nothing; }
    // Registration itself reports what is already there: the first wait needs no check.
    known input() const noexcept { return input_; }

    // Calls handler(error_code) once the socket may be readable (wait_read) or writable (wait_write), or with
    // operation_aborted after cancel(). A write wait is always `fresh` (callers wait after EAGAIN). After any read
    // wait the caller reads, so the note is reset to `nothing` until that read notes what it saw.
    template <class Handler>
    void async_wait(wait_type w, known k, Handler handler);

    // Ends every wait with operation_aborted.
    void cancel() noexcept;

private:
#if defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT)
    net::posix::stream_descriptor d_;
#else
    template <class Handler>
    struct wait_op;
    net::detail::reactor& reactor_;
    net::detail::reactor::per_descriptor_data data_{};
#endif
    int fd_;
    known input_ = known::fresh;
};

#if defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT)

inline edge_socket::edge_socket(net::io_context& ioc, int fd) : d_(ioc, fd), fd_(fd) {}
inline edge_socket::~edge_socket() = default;
inline void edge_socket::cancel() noexcept {
    boost::system::error_code ignored;
    d_.cancel(ignored);
}
template <class Handler>
void edge_socket::async_wait(wait_type w, known, Handler handler) {
    input_ = known::nothing;
    d_.async_wait(w, std::move(handler));
}

#else

// Completes at the first readiness event after it was queued. The reactor runs perform() once more, inside
// start_op, only if an event came while no wait was queued (Asio's try_speculative_): `check` says what that run
// does. Returning done_and_exhausted clears the hint, so the next wait after a draining read queues without a
// syscall.
template <class Handler>
struct edge_socket::wait_op final : net::detail::reactor_op {
    enum class check { none, peek };
    wait_op(Handler h, int fd, check c)
        : reactor_op(boost::system::error_code(), &wait_op::perform, &wait_op::complete),
          handler(std::move(h)), fd(fd), first(c) {}

    static status perform(reactor_op* base) {
        auto* o = static_cast<wait_op*>(base);
        if (!o->starting) return done_and_exhausted;  // the reactor saw an edge
        if (o->first == check::none) return not_done;
        char c;
        ssize_t n = ::recv(o->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? not_done : done_and_exhausted;
    }

    // One per wait: recycled, not a malloc and a free each time.
    static void* operator new(std::size_t n) { return recycler::allocate(n); }
    static void operator delete(void* p, std::size_t n) noexcept { recycler::deallocate(p, n); }

    static void complete(void* owner, net::detail::operation* base, const boost::system::error_code&, std::size_t) {
        auto* o = static_cast<wait_op*>(base);
        Handler h(std::move(o->handler));
        boost::system::error_code ec = o->ec_;
        delete o;
        if (owner) h(ec);  // null when the context is destroyed with the wait still queued
    }

    Handler handler;
    int fd;
    check first;
    bool starting = true;  // inside start_op: a perform() now is the reactor's speculative run
};

inline edge_socket::edge_socket(net::io_context& ioc, int fd)
    : reactor_(net::use_service<net::detail::reactor>(ioc)), fd_(fd) {
    reactor_.init_task();  // the context polls the reactor (as Asio's own descriptors ask; idempotent)
    if (int err = reactor_.register_descriptor(fd_, data_)) {
        ::close(fd_);
        throw boost::system::system_error(err, boost::system::system_category(), "epoll_ctl");
    }
}

inline edge_socket::~edge_socket() {
    // Not `closing`: a dup of the descriptor may outlive it (one the app made, or gevent's environ["gunicorn.socket"]),
    // and epoll would then keep the registration: it is removed first.
    reactor_.deregister_descriptor(fd_, data_, false);
    ::close(fd_);
    reactor_.cleanup_descriptor_data(data_);
}

inline void edge_socket::cancel() noexcept { reactor_.cancel_ops(fd_, data_); }

template <class Handler>
void edge_socket::async_wait(wait_type w, known k, Handler handler) {
    bool write = w == wait_type::wait_write;
    if (write) k = known::fresh;
    else input_ = known::nothing;
    using op = wait_op<Handler>;
    if (k == known::nothing) {
        // Asio's re-arming wait: allow_speculative=false makes start_op issue EPOLL_CTL_MOD, which reports
        // readiness already there; the op then completes at the first event.
        auto* o = new op(std::move(handler), fd_, op::check::none);
        o->starting = false;  // start_op runs no perform() without allow_speculative
        reactor_.start_op(net::detail::reactor::read_op, fd_, data_, o, false, false);
        return;
    }
    auto* o = new op(std::move(handler), fd_, k == known::fresh ? op::check::none : op::check::peek);
    // Runs perform() at once if an event came since the last exhausted wait; queues it otherwise, with no
    // epoll_ctl (a write wait adds EPOLLOUT to the registration the first time only). Only this thread runs the
    // context, so `o` is alive after start_op even if it completed in there (it was posted, not run).
    reactor_.start_op(write ? net::detail::reactor::write_op : net::detail::reactor::read_op, fd_, data_, o, false,
                      true);
    o->starting = false;
}

#endif

}  // namespace gcorn::hub
