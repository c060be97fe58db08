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

scoreboard::scoreboard(size_t first_block) { map_block(first_block); }

scoreboard::~scoreboard() {
    for (auto& b : blocks_) ::munmap(b.slots, sizeof(worker_slot) * b.n);
}

void scoreboard::map_block(size_t n) {
    void* p = ::mmap(nullptr, sizeof(worker_slot) * n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw_errno("mmap scoreboard");
    auto* slots = static_cast<worker_slot*>(p);
    for (size_t i = 0; i < n; ++i) new (&slots[i]) worker_slot{};
    blocks_.push_back({slots, n});
}

worker_slot& scoreboard::take_free() {
    for (auto& b : blocks_)
        for (size_t i = 0; i < b.n; ++i)
            if (b.slots[i].pid.load() == 0) return b.slots[i];
    map_block(blocks_.back().n);
    return blocks_.back().slots[0];
}

size_t scoreboard::capacity() const noexcept {
    size_t n = 0;
    for (auto& b : blocks_) n += b.n;
    return n;
}

}  // namespace gcorn::sys
