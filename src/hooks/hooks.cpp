#include "hooks/hooks.hpp"

#include <algorithm>
#include <string>

#include <spdlog/spdlog.h>

#include "py/gil.hpp"
#include "py/native.hpp"

namespace gcorn::hooks {
namespace {

py::object module() { return py::import("gcorn._hooks"); }
py::object name(hook h) { return py::str(std::string(config::name_of(h))); }

// Runs `f` with the GIL, logging instead of throwing: a hook must never take the server down.
template <class F>
void guarded(hook h, F&& f) noexcept {
    py::gil_acquire gil;
    try {
        f();
    } catch (const std::exception& e) {
        spdlog::error("{} hook failed: {}", config::name_of(h), e.what());
    }
}

// A master hook taking only `server`, or null when not configured.
std::function<void()> simple(const config::settings& s, hook h) {
    if (!configured(s, h)) return nullptr;
    return [h] { master_call(h); };
}

}  // namespace

bool configured(const config::settings& s, hook h) {
    auto n = config::name_of(h);
    return std::any_of(s.hooks.begin(), s.hooks.end(), [&](const std::string& spec) {
        return spec.size() > n.size() && spec.compare(0, n.size(), n) == 0 && spec[n.size()] == '=';
    });
}

bool needs_master_python(const config::settings& s) {
    return std::any_of(std::begin(config::hooks), std::end(config::hooks),
                       [&](const config::hook_row& r) { return r.in_master && configured(s, r.id); });
}

void configure(const config::settings& s) {
    auto list = py::import("builtins").attr("list")();
    for (auto& h : s.hooks) list.attr("append")({py::str(h)});
    module().attr("configure")({py::str(config::to_toml(s)), list});
}

void master_call(hook h) {
    guarded(h, [&] { module().attr("master")({name(h)}); });
}

sys::master_hooks master_side(const config::settings& s) {
    sys::master_hooks m;
    m.when_ready = simple(s, hook::when_ready);
    m.on_reload = simple(s, hook::on_reload);
    m.pre_exec = simple(s, hook::pre_exec);
    m.on_exit = simple(s, hook::on_exit);
    if (configured(s, hook::pre_fork))
        m.pre_fork = [](pid_t, int age) {
            guarded(hook::pre_fork, [&] { module().attr("pre_fork")({py::integer(age)}); });
        };
    if (configured(s, hook::child_exit))
        m.child_exit = [](pid_t pid, int age) {
            guarded(hook::child_exit, [&] { module().attr("child_exit")({py::integer(pid), py::integer(age)}); });
        };
    if (configured(s, hook::nworkers_changed))
        m.nworkers_changed = [](int now, int before) {
            guarded(hook::nworkers_changed, [&] {
                auto old = before < 0 ? py::none() : py::integer(before);
                module().attr("master")({name(hook::nworkers_changed), py::integer(now), old});
            });
        };
    if (!s.hooks.empty())
        m.spawned = [](pid_t pid, int age) {
            guarded(hook::pre_fork, [&] { module().attr("spawned")({py::integer(pid), py::integer(age)}); });
        };
    return m;
}

void set_listeners(const std::vector<int>& fds) {
    guarded(hook::on_starting, [&] {
        auto list = py::import("builtins").attr("list")();
        for (int fd : fds) list.attr("append")({py::integer(fd)});
        module().attr("set_listeners")({list});
    });
}

void become_worker(int age, sys::worker_slot& slot) {
    auto beat = [](void* ctx, const py::call_args&) {
        static_cast<sys::worker_slot*>(ctx)->beat();
        return py::none();
    };
    guarded(hook::post_fork, [&] { module().attr("become_worker")({py::integer(age), py::native_function(beat, &slot)}); });
}

void worker_call(hook h) {
    guarded(h, [&] { module().attr("worker")({name(h)}); });
}

py::object pre_request(const config::settings& s) {
    return configured(s, hook::pre_request) ? module().attr("pre_request") : py::object();
}

py::object post_request(const config::settings& s) {
    return configured(s, hook::post_request) ? module().attr("post_request") : py::object();
}

py::object ssl_context(const config::settings& s) {
    return configured(s, hook::ssl_context) ? module().attr("ssl_context")() : py::object();
}

}  // namespace gcorn::hooks
