#include "sys/scoreboard.hpp"

#include <ctime>
#include <new>
#include <sys/mman.h>

#include "sys/fd.hpp"

namespace gcorn::sys {

int64_t monotonic_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

scoreboard::scoreboard(size_t slots) : n_(slots) {
    void* p = ::mmap(nullptr, sizeof(worker_slot) * n_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw_errno("mmap scoreboard");
    slots_ = static_cast<worker_slot*>(p);
    for (size_t i = 0; i < n_; ++i) new (&slots_[i]) worker_slot{};
}

scoreboard::~scoreboard() { ::munmap(slots_, sizeof(worker_slot) * n_); }

worker_slot* scoreboard::find_free() noexcept {
    for (size_t i = 0; i < n_; ++i)
        if (slots_[i].pid.load() == 0) return &slots_[i];
    return nullptr;
}

}  // namespace gcorn::sys
