// accept(2) out of file descriptors (EMFILE, ENFILE): the connection stays queued and the listener readable, so
// an accept loop that goes straight back spins at full CPU and serves nobody. Both drivers pause accepting
// instead — until one of their connections closes (freeing a descriptor) or a back-off passes — and say so once.
#pragma once
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <sys/resource.h>

#include <spdlog/spdlog.h>

namespace gcorn::worker {

class accept_pause {
public:
    // After accept4 failed with `err`: true if accepting must pause for delay() (out of descriptors or kernel
    // memory); false for the expected failures (the queue is empty, another worker took it, the peer gave up).
    bool failed(int err) {
        if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) return false;
        if (!paused_) log(err);
        delay_ = paused_ ? std::min(delay_ * 2, longest) : shortest;
        paused_ = true;
        return true;
    }
    // An accept worked: the episode is over, the next one is logged again.
    void succeeded() {
        if (paused_) spdlog::info("Accepting connections again");
        paused_ = false;
    }
    std::chrono::milliseconds delay() const { return delay_; }

private:
    // Long enough that a loop of failed accepts costs nothing, short enough that a freed descriptor is used soon
    // (a connection closing in this worker ends the pause at once).
    static constexpr std::chrono::milliseconds shortest{100}, longest{1000};

    static void log(int err) {
        rlimit r{};
        ::getrlimit(RLIMIT_NOFILE, &r);
        if (err == EMFILE)
            spdlog::warn("Out of file descriptors (EMFILE: RLIMIT_NOFILE is {}): not accepting connections until "
                            "one closes", r.rlim_cur);
        else
            spdlog::warn("accept() failed ({}): not accepting connections for a while", err == ENFILE
                         ? "ENFILE: the system's file table is full" : "out of kernel memory");
    }

    bool paused_ = false;
    std::chrono::milliseconds delay_{shortest};
};

}  // namespace gcorn::worker
