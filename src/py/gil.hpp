// Scoped GIL guards. Blocking waits release the GIL so other Python threads run (DESIGN §2, §3).
#pragma once
#include <thread>

struct _ts;
struct _object;

namespace gcorn::py {

// Releases the GIL for the scope. PRECONDITION: the calling thread holds the GIL.
class gil_release {
public:
    gil_release() noexcept;
    ~gil_release();
    gil_release(const gil_release&) = delete;
    gil_release& operator=(const gil_release&) = delete;

    // Takes the GIL back for a nested scope (the hub's completion handlers, DESIGN §3 GIL).
    // PRECONDITION: on the thread that created the gil_release, which does not hold the GIL.
    class hold {
    public:
        explicit hold(gil_release& outer) noexcept;
        ~hold();
        hold(const hold&) = delete;
        hold& operator=(const hold&) = delete;

    private:
        gil_release& outer_;
    };

private:
    _ts* state_;
};

// True if the calling thread holds the GIL.
bool gil_held() noexcept;

// Joins `t`, a thread that may be waiting for the GIL: releases the GIL meanwhile if the caller holds it.
void join_without_gil(std::thread& t);

// Holds the GIL from any thread (a thread-pool job calling Python). Precondition: interpreter running.
class gil_acquire {
public:
    gil_acquire() noexcept;
    ~gil_acquire();
    gil_acquire(const gil_acquire&) = delete;
    gil_acquire& operator=(const gil_acquire&) = delete;

private:
    int state_;
};

// Runs the scope in a fresh, empty contextvars.Context (a pooled greenlet's next request must not see the
// previous one's context variables). PRECONDITION: GIL held. Throws python_error.
class context_scope {
public:
    context_scope();
    ~context_scope();
    context_scope(const context_scope&) = delete;
    context_scope& operator=(const context_scope&) = delete;

private:
    ::_object* ctx_;
};

}  // namespace gcorn::py
