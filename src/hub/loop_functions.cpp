#include "hub/loop_functions.hpp"

#include <cmath>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "hub/event_loop.hpp"
#include "hub/hub.hpp"
#include "py/gil.hpp"
#include "py/native.hpp"

namespace gcorn::hub {
namespace {

using kind = py::python_error::kind;

// Loops by handle. A handle is never reused, so a stale one raises instead of reaching another loop. The mutex
// covers the table only: a loop is used from one thread at a time, except async_send (thread-safe itself).
std::mutex loops_mutex;
std::unordered_map<long long, std::shared_ptr<event_loop>> loops;
long long next_handle = 0;

std::shared_ptr<event_loop> loop_of(const py::call_args& args) {
    if (args.size() < 1) throw py::python_error(kind::type_error, "a loop handle is required");
    auto handle = py::to_integer(args[0]);
    std::lock_guard lock(loops_mutex);
    auto it = loops.find(handle);
    if (it == loops.end()) throw py::python_error(kind::value_error, "the loop was destroyed");
    return it->second;
}

long long int_arg(const py::call_args& args, size_t i) { return py::to_integer(args[i]); }
uint64_t id_arg(const py::call_args& args) { return uint64_t(int_arg(args, 1)); }

// loop_new(on_hub): on_hub asks for the worker hub's io_context (the hub greenlet runs gevent's hub there).
py::object loop_new(void*, const py::call_args& args) {
    bool on_hub = args.size() > 0 && py::truthy(args[0]);
    auto* h = hub::current();
    if (on_hub && (!h || !h->on_hub_thread())) on_hub = false;
    auto loop = std::make_shared<event_loop>(on_hub ? &h->context() : nullptr);
    std::lock_guard lock(loops_mutex);
    loops.emplace(++next_handle, std::move(loop));
    return py::integer(next_handle);
}

py::object loop_destroy(void*, const py::call_args& args) {
    auto handle = int_arg(args, 0);
    std::shared_ptr<event_loop> dying;
    {
        std::lock_guard lock(loops_mutex);
        auto it = loops.find(handle);
        if (it == loops.end()) return py::none();
        dying = std::move(it->second);
        loops.erase(it);
    }
    return py::none();  // `dying` goes here, with the GIL held: its handlers hold no Python objects
}

py::object io_start(void*, const py::call_args& args) {
    int fd = int(int_arg(args, 1)), events = int(int_arg(args, 2));
    return py::integer((long long)loop_of(args)->io_start(fd, events));
}
py::object io_stop(void*, const py::call_args& args) {
    loop_of(args)->io_stop(id_arg(args));
    return py::none();
}
py::object timer_start(void*, const py::call_args& args) {
    double seconds = py::to_double(args[1]);
    if (!(seconds >= 0)) seconds = 0;
    return py::integer((long long)loop_of(args)->timer_start(seconds));
}
py::object timer_stop(void*, const py::call_args& args) {
    loop_of(args)->timer_stop(id_arg(args));
    return py::none();
}
py::object async_new(void*, const py::call_args& args) {
    return py::integer((long long)loop_of(args)->async_new());
}
py::object async_send(void*, const py::call_args& args) {
    loop_of(args)->async_send(id_arg(args));
    return py::none();
}
py::object async_close(void*, const py::call_args& args) {
    loop_of(args)->async_close(id_arg(args));
    return py::none();
}
py::object signal_start(void*, const py::call_args& args) {
    return py::integer((long long)loop_of(args)->signal_start(int(int_arg(args, 1))));
}
py::object signal_stop(void*, const py::call_args& args) {
    loop_of(args)->signal_stop(id_arg(args));
    return py::none();
}

// loop_poll(handle, block, max_wait) -> [(watcher id, events), ...]; waits without the GIL.
py::object poll(void*, const py::call_args& args) {
    auto loop = loop_of(args);
    bool block = args.size() > 1 && py::truthy(args[1]);
    double max_wait = args.size() > 2 && !py::is_none(args[2]) ? py::to_double(args[2]) : -1;
    std::optional<event_loop::fired> got;
    auto* h = hub::current();
    if (h && !loop->owns_context() && &h->context() == &loop->context()) {
        // gevent's hub on the worker's reactor: gcorn's completion handlers run in this poll and switch greenlets.
        h->poll_without_gil([&] { got = loop->poll(block, max_wait); });
    } else {
        py::gil_release unlocked;
        got = loop->poll(block, max_wait);
    }
    if (!got) return py::none();  // the worker is stopping
    auto out = py::list();
    for (auto& [id, events] : *got) py::append(out, py::tuple({py::integer((long long)id), py::integer(events)}));
    return out;
}

py::object now(void*, const py::call_args&) { return py::floating(event_loop::now()); }

// hub_finish(): the worker's reactor stopped under gevent's hub: gcorn's greenlets are killed from here.
py::object hub_finish(void*, const py::call_args&) {
    if (auto* h = hub::current(); h && h->runs_gevent() && h->on_hub_thread()) h->finish_in_gevent_hub();
    return py::none();
}

py::object on_worker(void*, const py::call_args& args) {
    auto loop = loop_of(args);
    auto* h = hub::current();
    return py::boolean(h && !loop->owns_context() && &h->context() == &loop->context());
}

py::object reinit(void*, const py::call_args& args) {
    loop_of(args)->reinit();
    return py::none();
}

}  // namespace

void install_loop_functions() {
    static int marker;
    void* ctx = &marker;
    auto module = py::import("_gcorn");
    py::set_attr(module, "loop_new", py::native_function(&loop_new, ctx));
    py::set_attr(module, "loop_destroy", py::native_function(&loop_destroy, ctx));
    py::set_attr(module, "loop_io_start", py::native_function(&io_start, ctx));
    py::set_attr(module, "loop_io_stop", py::native_function(&io_stop, ctx));
    py::set_attr(module, "loop_timer_start", py::native_function(&timer_start, ctx));
    py::set_attr(module, "loop_timer_stop", py::native_function(&timer_stop, ctx));
    py::set_attr(module, "loop_async_new", py::native_function(&async_new, ctx));
    py::set_attr(module, "loop_async_send", py::native_function(&async_send, ctx));
    py::set_attr(module, "loop_async_close", py::native_function(&async_close, ctx));
    py::set_attr(module, "loop_signal_start", py::native_function(&signal_start, ctx));
    py::set_attr(module, "loop_signal_stop", py::native_function(&signal_stop, ctx));
    py::set_attr(module, "loop_poll", py::native_function(&poll, ctx));
    py::set_attr(module, "loop_now", py::native_function(&now, ctx));
    py::set_attr(module, "loop_reinit", py::native_function(&reinit, ctx));
    py::set_attr(module, "hub_finish", py::native_function(&hub_finish, ctx));
    py::set_attr(module, "loop_on_worker", py::native_function(&on_worker, ctx));
}

}  // namespace gcorn::hub
