#include "hub/event_loop.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <atomic>
#include <csignal>
#include <sys/epoll.h>
#include <system_error>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

namespace gcorn::hub {
namespace {

// ---- the process's signal pipe (see event_loop.hpp) ----
struct signal_pipe {
    int read = -1, write = -1;
    pid_t owner = 0;                       // the process that made it: a forked child makes its own
    std::atomic<uint64_t> pending{0};      // a bit per signal number below 64
    struct sigaction previous[64]{};       // restored when the last watcher of a signal stops
    int watchers[64]{};
};
signal_pipe& sigpipe() {
    static signal_pipe p;
    return p;
}

void on_signal(int signum) {
    auto& p = sigpipe();
    int saved = errno;
    p.pending.fetch_or(uint64_t(1) << signum);
    char byte = 0;
    [[maybe_unused]] auto n = ::write(p.write, &byte, 1);  // a full pipe already means "look"
    errno = saved;
}

int signal_pipe_fd() {
    auto& p = sigpipe();
    if (p.owner == ::getpid()) return p.read;
    if (p.read >= 0) ::close(p.read), ::close(p.write);
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
    p.read = fds[0], p.write = fds[1], p.owner = ::getpid();
    return p.read;
}

uint32_t epoll_events(int events) {
    return (events & event_loop::readable ? EPOLLIN : 0u) | (events & event_loop::writable ? EPOLLOUT : 0u);
}

}  // namespace

struct event_loop_work {  // keeps run_one() waiting while only other threads (async_send) can wake the loop
    net::executor_work_guard<net::io_context::executor_type> guard;
};

event_loop::event_loop(net::io_context* ioc)
    : own_(ioc ? nullptr : std::make_unique<net::io_context>(1)), ioc_(ioc ? ioc : own_.get()) {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
    int watched = ::fcntl(epoll_fd_, F_DUPFD_CLOEXEC, 0);  // the stream_descriptor owns (and closes) its own copy
    epoll_watch_ = std::make_unique<net::posix::stream_descriptor>(*ioc_, watched);
    work_ = std::make_unique<event_loop_work>(event_loop_work{net::make_work_guard(*ioc_)});
}

event_loop::~event_loop() {
    work_.reset();
    timers_.clear();
    for (auto [id, signum] : signals_) signal_stop_number(signum);
    epoll_watch_.reset();
    ::close(epoll_fd_);
    if (own_) own_->poll();  // run the cancelled handlers while the watchers' memory is still ours
}

double event_loop::now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// ---- io ----

uint64_t event_loop::io_start(int fd, int events) {
    uint64_t id = ++next_id_;
    io_.emplace(id, io_watcher{fd, events});
    fds_[fd].watchers.push_back(id);
    update_fd(fd);
    return id;
}

void event_loop::io_stop(uint64_t id) {
    auto it = io_.find(id);
    if (it == io_.end()) return;
    int fd = it->second.fd;
    io_.erase(it);
    auto& w = fds_[fd].watchers;
    std::erase(w, id);
    update_fd(fd);
}

// The fd's registration follows the union of its watchers' events. The kernel drops a closed fd from the set
// by itself, so a reused fd number may be registered or not whatever we remember: ENOENT and EEXIST are retried
// the other way.
void event_loop::update_fd(int fd) {
    auto it = fds_.find(fd);
    uint32_t want = 0;
    for (auto id : it->second.watchers) want |= epoll_events(io_.at(id).events);
    epoll_event ev{};
    ev.events = want;
    ev.data.fd = fd;
    if (want == 0) {
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, &ev);  // ENOENT/EBADF: already gone with the fd
        fds_.erase(it);
        return;
    }
    int op = it->second.registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (::epoll_ctl(epoll_fd_, op, fd, &ev) != 0) {
        if (errno == ENOENT) ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
        else if (errno == EEXIST) ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
        // EBADF/EPERM (a closed fd, a regular file): the watcher stays silent, as libev's would be unusable
    }
    it->second.registered = want;
}

void event_loop::arm_epoll() {
    if (epoll_armed_ || (fds_.empty() && !watching_signal_pipe_)) return;
    epoll_armed_ = true;
    epoll_watch_->async_wait(net::posix::stream_descriptor::wait_read, [this](boost::system::error_code ec) {
        epoll_armed_ = false;
        if (!ec) epoll_ready_ = true;
    });
}

void event_loop::collect_io() {
    epoll_event events[256];
    int n = ::epoll_wait(epoll_fd_, events, 256, 0);
    for (int i = 0; i < n; ++i) {
        if (watching_signal_pipe_ && events[i].data.fd == sigpipe().read) {
            collect_signals();
            continue;
        }
        auto it = fds_.find(events[i].data.fd);
        if (it == fds_.end()) continue;
        int revents = (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR) ? readable : 0) |
                      (events[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR) ? writable : 0);
        for (auto id : it->second.watchers)
            if (int got = revents & io_.at(id).events) fired_.emplace_back(id, got);
    }
}

// ---- timers, asyncs, signals ----

uint64_t event_loop::timer_start(double seconds) {
    uint64_t id = ++next_id_;
    auto timer = std::make_unique<net::steady_timer>(*ioc_);
    timer->expires_after(std::chrono::duration_cast<net::steady_timer::duration>(std::chrono::duration<double>(seconds)));
    timer->async_wait([this, id](boost::system::error_code ec) {
        if (ec) return;
        timers_.erase(id);
        fired_.emplace_back(id, 0);
    });
    timers_.emplace(id, std::move(timer));
    return id;
}

void event_loop::timer_stop(uint64_t id) { timers_.erase(id); }  // its handler runs with operation_aborted

uint64_t event_loop::async_new() {
    std::lock_guard lock(async_mutex_);
    uint64_t id = ++next_id_;
    asyncs_.emplace(id, false);
    return id;
}

void event_loop::async_send(uint64_t id) {
    {
        std::lock_guard lock(async_mutex_);
        auto it = asyncs_.find(id);
        if (it == asyncs_.end() || std::exchange(it->second, true)) return;  // one wake-up per batch of sends
    }
    net::post(*ioc_, [this, id] {
        std::lock_guard lock(async_mutex_);
        auto it = asyncs_.find(id);
        if (it == asyncs_.end()) return;
        it->second = false;
        fired_.emplace_back(id, 0);
    });
}

void event_loop::async_close(uint64_t id) {
    std::lock_guard lock(async_mutex_);
    asyncs_.erase(id);
}

uint64_t event_loop::signal_start(int signum) {
    if (signum <= 0 || signum >= 64) throw std::invalid_argument("signal number out of range");
    int fd = signal_pipe_fd();
    if (!watching_signal_pipe_) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = fd;
        if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0 && errno != EEXIST)
            throw std::system_error(errno, std::generic_category(), "epoll_ctl signal pipe");
        watching_signal_pipe_ = true;
    }
    auto& p = sigpipe();
    if (p.watchers[signum]++ == 0) {
        struct sigaction sa{};
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        ::sigaction(signum, &sa, &p.previous[signum]);
    }
    uint64_t id = ++next_id_;
    signals_.emplace(id, signum);
    return id;
}

void event_loop::signal_stop_number(int signum) {
    auto& p = sigpipe();
    if (p.watchers[signum] > 0 && --p.watchers[signum] == 0) ::sigaction(signum, &p.previous[signum], nullptr);
}

void event_loop::signal_stop(uint64_t id) {
    auto it = signals_.find(id);
    if (it == signals_.end()) return;
    signal_stop_number(it->second);
    signals_.erase(it);
}

void event_loop::collect_signals() {
    auto& p = sigpipe();
    char drain[256];
    while (::read(p.read, drain, sizeof drain) > 0) {
    }
    uint64_t mask = p.pending.exchange(0);
    for (auto& [id, signum] : signals_)
        if (mask & (uint64_t(1) << signum)) fired_.emplace_back(id, 0);
}

// ---- running ----

std::optional<event_loop::fired> event_loop::poll(bool block, double max_wait) {
    fired_.clear();
    if (ioc_->stopped()) {
        if (!own_) return std::nullopt;
        ioc_->restart();
    }
    arm_epoll();
    auto until = std::chrono::steady_clock::now() +
                 std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(max_wait));
    ioc_->poll();
    while (block && fired_.empty() && !epoll_ready_) {
        size_t ran = max_wait < 0 ? ioc_->run_one() : ioc_->run_one_until(until);
        if (ran) ioc_->poll();  // and whatever became ready with it
        else if (max_wait >= 0 || ioc_->stopped()) break;  // the bound passed, or the owner stopped it
    }
    if (!own_ && ioc_->stopped() && fired_.empty() && !epoll_ready_) return std::nullopt;
    if (epoll_ready_) {
        epoll_ready_ = false;
        collect_io();
    }
    return std::move(fired_);
}

void event_loop::reinit() {
    if (own_) own_->notify_fork(net::execution_context::fork_child);
    epoll_watch_.reset();  // closes our copy; the parent keeps its own
    epoll_armed_ = epoll_ready_ = false;
    ::close(epoll_fd_);
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
    epoll_watch_ = std::make_unique<net::posix::stream_descriptor>(*ioc_, ::fcntl(epoll_fd_, F_DUPFD_CLOEXEC, 0));
    for (auto& [fd, entry] : fds_) entry.registered = 0;
    std::vector<int> fds;
    for (auto& [fd, entry] : fds_) fds.push_back(fd);
    for (int fd : fds) update_fd(fd);
    if (watching_signal_pipe_) {  // this process's own pipe, in the new set
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = signal_pipe_fd();
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, ev.data.fd, &ev);
    }
}

}  // namespace gcorn::hub
