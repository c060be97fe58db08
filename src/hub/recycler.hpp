// Small blocks kept for reuse on the thread that frees them. The reactor starts a wait for every keep-alive
// request and ends it a moment later; a malloc and a free per wait cost more than the rest of the wait (callgrind,
// issue 14). Asio's own recycling keeps two blocks per thread, which a batch of 64 completions followed by 64 new
// waits runs through at once; this keeps up to `keep` blocks of each of three sizes. Plain C++, any thread: a
// block may be freed on another thread than the one that allocated it (it then joins that thread's list).
#pragma once
#include <cstddef>
#include <new>
#include <utility>

namespace gcorn::hub::recycler {

namespace detail {
inline constexpr std::size_t classes[] = {64, 128, 256};
inline constexpr unsigned keep = 256;

struct node {
    node* next;
};

// Trivially destructible on purpose: a block freed during the thread's (or the process's) teardown, after its
// thread_local objects are gone, still finds a usable list, and no access pays for a lazy-initialisation guard.
// What a thread keeps when it ends (at most `keep` blocks of each class) is left to the process's end.
struct lists {
    node* head[std::size(classes)];
    unsigned count[std::size(classes)];
};

inline lists& mine() {
    thread_local lists l{};
    return l;
}

// The size class of an `n`-byte block, or -1 past the largest.
constexpr int class_of(std::size_t n) noexcept {
    for (int i = 0; i < int(std::size(classes)); ++i)
        if (n <= classes[i]) return i;
    return -1;
}
}  // namespace detail

inline void* allocate(std::size_t n) {
    int c = detail::class_of(n);
    if (c < 0) return ::operator new(n);
    auto& l = detail::mine();
    if (auto* b = l.head[c]) {
        l.head[c] = b->next;
        --l.count[c];
        return b;
    }
    return ::operator new(detail::classes[c]);
}

inline void deallocate(void* p, std::size_t n) noexcept {
    int c = detail::class_of(n);
    auto& l = detail::mine();
    if (c < 0 || l.count[c] >= detail::keep) return ::operator delete(p);
    l.head[c] = ::new (p) detail::node{l.head[c]};
    ++l.count[c];
}

}  // namespace gcorn::hub::recycler
