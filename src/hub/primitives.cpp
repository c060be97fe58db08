#include "hub/primitives.hpp"

#include <cmath>
#include <optional>
#include <string>
#include <poll.h>
#include <time.h>

#include "hub/hub.hpp"
#include "py/native.hpp"

namespace gcorn::hub {
namespace {

using kind = py::python_error::kind;

// The running hub if the caller is one of its greenlets: then waits park; otherwise they block.
hub* active(void*) {
    auto* h = hub::current();
    return h && h->on_hub_thread() && h->in_child() ? h : nullptr;
}

// The hub, for calls that must come from its thread (they touch its state without a lock).
hub& hub_thread_only(const char* what) {
    auto* h = hub::current();
    if (!h || !h->on_hub_thread()) throw py::python_error(kind::runtime_error, std::string(what) + " needs the async worker's hub");
    return *h;
}

// timeout argument: None (no deadline) or seconds as a number.
std::optional<double> timeout_arg(const py::call_args& args, size_t i) {
    if (args.size() <= i || py::is_none(args[i])) return std::nullopt;
    double t = py::to_double(args[i]);
    if (t < 0 || std::isnan(t)) throw py::python_error(kind::value_error, "timeout must be a non-negative number");
    return t;
}

deadline deadline_after(std::optional<double> seconds) {
    if (!seconds) return no_deadline;
    return clock::now() + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(*seconds));
}

[[noreturn]] void raise_timeout() { throw py::python_error(kind::timeout_error, "timed out"); }

// Converts `killed` into the GreenletExit Python code expects to see.
template <class F>
auto cooperative(F&& f) {
    try {
        return f();
    } catch (const killed&) {
        throw py::python_error(kind::greenlet_exit, "greenlet killed");
    }
}

py::object wait_io(void* ctx, const py::call_args& args, bool writable) {
    if (args.size() < 1) throw py::python_error(kind::type_error, "wait_read(fd, timeout=None)");
    int fd = int(py::to_integer(args[0]));
    auto timeout = timeout_arg(args, 1);
    if (hub* h = active(ctx)) {
        if (cooperative([&] { return h->wait_fd(fd, writable, deadline_after(timeout)); }) == woke::timeout)
            raise_timeout();
        return py::none();
    }
    pollfd p{fd, short(writable ? POLLOUT : POLLIN), 0};
    int rc;
    {
        py::gil_release unlocked;
        rc = ::poll(&p, 1, timeout ? int(*timeout * 1000) : -1);
    }
    if (rc == 0) raise_timeout();
    return py::none();
}

py::object wait_read(void* ctx, const py::call_args& args) { return wait_io(ctx, args, false); }
py::object wait_write(void* ctx, const py::call_args& args) { return wait_io(ctx, args, true); }

py::object sleep(void* ctx, const py::call_args& args) {
    auto seconds = timeout_arg(args, 0).value_or(0);
    if (hub* h = active(ctx)) {
        cooperative([&] {
            if (seconds <= 0) h->yield();  // sleep(0) is the idiom for "let others run"
            else h->sleep(deadline_after(seconds));
            return 0;
        });
        return py::none();
    }
    timespec ts{time_t(seconds), long((seconds - std::floor(seconds)) * 1e9)};
    py::gil_release unlocked;
    while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
    return py::none();
}

// spawn(fn, *args) -> token: fn(*args) runs in a new greenlet once the caller next yields.
py::object spawn(void*, const py::call_args& args) {
    auto& h = hub_thread_only("spawn()");
    if (args.size() < 1) throw py::python_error(kind::type_error, "spawn(fn, *args)");
    return py::integer(static_cast<long long>(h.spawn_python(args[0], args.tuple_from(1))));
}

// current_token() -> int: the running job's token, 0 outside a hub greenlet.
py::object current_token(void* ctx, const py::call_args&) {
    hub* h = active(ctx);
    return py::integer(h ? static_cast<long long>(h->current_token()) : 0);
}

uint64_t token_arg(const py::call_args& args, size_t i) {
    if (args.size() <= i) throw py::python_error(kind::type_error, "a token argument is required");
    return static_cast<uint64_t>(py::to_integer(args[i]));
}

// wait_wakeup(timeout=None) -> bool: parks until wakeup(current_token()) (True) or the timeout (False).
// Wakeups may be spurious. Only in a hub greenlet: other threads wait on a lock of their own.
py::object wait_wakeup(void* ctx, const py::call_args& args) {
    hub* h = active(ctx);
    if (!h) throw py::python_error(kind::runtime_error, "wait_wakeup() outside a hub greenlet");
    auto until = deadline_after(timeout_arg(args, 0));
    return py::boolean(cooperative([&] { return h->wait_wakeup(until); }) == woke::ready);
}

// wakeup(token): from any thread; a finished job's token (or no hub at all) is ignored.
py::object wakeup(void*, const py::call_args& args) {
    auto token = token_arg(args, 0);
    if (auto* h = hub::current()) h->wakeup(token);
    return py::none();
}

// throw_later(token, seconds, exception) -> id: raises `exception` in that job if it is waiting by then.
py::object throw_later(void*, const py::call_args& args) {
    auto& h = hub_thread_only("throw_later()");
    if (args.size() != 3 || !py::is_exception(args[2]))
        throw py::python_error(kind::type_error, "throw_later(token, seconds, exception instance)");
    auto id = h.throw_later(token_arg(args, 0), deadline_after(timeout_arg(args, 1).value_or(0)), args[2]);
    return py::integer(static_cast<long long>(id));
}

py::object cancel_throw(void*, const py::call_args& args) {
    hub_thread_only("cancel_throw()").cancel_throw(token_arg(args, 0));
    return py::none();
}

// run_in_threadpool(fn, *args): fn runs on a pool thread (taking the GIL there) while only this greenlet
// waits; outside the hub it simply runs here.
py::object run_in_threadpool(void* ctx, const py::call_args& args) {
    if (args.size() < 1) throw py::python_error(kind::type_error, "run_in_threadpool(fn, *args)");
    auto fn = args[0], rest = args.tuple_from(1);
    hub* h = active(ctx);
    if (!h) return py::call_tuple(fn, rest);
    struct outcome {
        py::object fn, args, result;
        std::optional<py::python_error> error;
    };
    // Shared by this call and the pool's copy of the job; whichever lets go last does so holding the GIL (the
    // caller may have been interrupted by a throw_later and be gone while the job still runs).
    auto out = std::make_shared<outcome>();
    out->fn = fn, out->args = rest;
    cooperative([&] {
        h->run_in_threadpool([out]() mutable {
            py::gil_acquire gil;
            try {
                out->result = py::call_tuple(out->fn, out->args);
            } catch (const py::python_error& e) {
                out->error = e;
            }
            out.reset();
        });
        return 0;
    });
    if (out->error) throw *out->error;
    return out->result;
}

py::object in_hub(void* ctx, const py::call_args&) { return py::boolean(active(ctx) != nullptr); }

}  // namespace

void install_primitives() {
    static int marker;
    void* h = &marker;  // the primitives look the hub up when called; a non-null context keeps them attached
    auto module = py::import("_gcorn");
    py::set_attr(module, "sleep", py::native_function(&sleep, h));
    py::set_attr(module, "wait_read", py::native_function(&wait_read, h));
    py::set_attr(module, "wait_write", py::native_function(&wait_write, h));
    py::set_attr(module, "spawn", py::native_function(&spawn, h));
    py::set_attr(module, "run_in_threadpool", py::native_function(&run_in_threadpool, h));
    py::set_attr(module, "in_hub", py::native_function(&in_hub, h));
    py::set_attr(module, "current_token", py::native_function(&current_token, h));
    py::set_attr(module, "wait_wakeup", py::native_function(&wait_wakeup, h));
    py::set_attr(module, "wakeup", py::native_function(&wakeup, h));
    py::set_attr(module, "throw_later", py::native_function(&throw_later, h));
    py::set_attr(module, "cancel_throw", py::native_function(&cancel_throw, h));
}

}  // namespace gcorn::hub
