// A job for a greenlet (hub::spawn): a move-only callable stored inline up to `inline_size` bytes, so spawning the
// reactor's per-request job allocates nothing (std::function keeps on the heap anything that is not trivially
// copyable, e.g. a lambda holding a shared_ptr). A larger callable goes to the heap. Plain C++.
#pragma once
#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace gcorn::hub {

class job_fn {
public:
    static constexpr std::size_t inline_size = 64;

    job_fn() noexcept = default;
    template <class F>
        requires(!std::is_same_v<std::decay_t<F>, job_fn> && std::is_invocable_v<std::decay_t<F>&>)
    job_fn(F&& f) {  // NOLINT: converts from any callable, as std::function does
        using T = std::decay_t<F>;
        if constexpr (stored_inline<T>) {
            ::new (static_cast<void*>(buf_)) T(std::forward<F>(f));
            ops_ = &inline_ops<T>;
        } else {
            *reinterpret_cast<T**>(buf_) = new T(std::forward<F>(f));
            ops_ = &heap_ops<T>;
        }
    }
    job_fn(job_fn&& o) noexcept { take(o); }
    job_fn& operator=(job_fn&& o) noexcept {
        if (this != &o) reset(), take(o);
        return *this;
    }
    job_fn(const job_fn&) = delete;
    job_fn& operator=(const job_fn&) = delete;
    ~job_fn() { reset(); }

    explicit operator bool() const noexcept { return ops_ != nullptr; }
    void operator()() { ops_->call(buf_); }
    void reset() noexcept {
        if (ops_) std::exchange(ops_, nullptr)->destroy(buf_);
    }

private:
    struct ops {
        void (*call)(void* self);
        void (*relocate)(void* from, void* to) noexcept;  // move-constructs at `to` and destroys `from`
        void (*destroy)(void* self) noexcept;
    };
    template <class T>
    static constexpr bool stored_inline = sizeof(T) <= inline_size && alignof(T) <= alignof(std::max_align_t) &&
                                          std::is_nothrow_move_constructible_v<T>;
    template <class T>
    static constexpr ops inline_ops = {
        [](void* s) { (*static_cast<T*>(s))(); },
        [](void* from, void* to) noexcept {
            ::new (to) T(std::move(*static_cast<T*>(from)));
            static_cast<T*>(from)->~T();
        },
        [](void* s) noexcept { static_cast<T*>(s)->~T(); },
    };
    template <class T>
    static constexpr ops heap_ops = {
        [](void* s) { (**static_cast<T**>(s))(); },
        [](void* from, void* to) noexcept { *static_cast<T**>(to) = *static_cast<T**>(from); },
        [](void* s) noexcept { delete *static_cast<T**>(s); },
    };

    void take(job_fn& o) noexcept {
        if (!o.ops_) return;
        o.ops_->relocate(o.buf_, buf_);
        ops_ = std::exchange(o.ops_, nullptr);
    }

    alignas(std::max_align_t) unsigned char buf_[inline_size];
    const ops* ops_ = nullptr;
};

}  // namespace gcorn::hub
