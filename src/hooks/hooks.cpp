#include "hooks/hooks.hpp"

#include <algorithm>
#include <spdlog/spdlog.h>

#include "py/gil.hpp"

namespace gcorn::hooks {
namespace {

py::object module() { return py::import("gcorn._hooks"); }

// Runs `f` with the GIL, logging instead of throwing: a hook must never take the server down.
template <class F>
void guarded(const char* what, F&& f) noexcept {
    py::gil_acquire gil;
    try {
        f();
    } catch (const std::exception& e) {
        spdlog::error("{} hook failed: {}", what, e.what());
    }
}

constexpr const char* master_hook_names[] = {"on_starting", "on_reload", "when_ready",      "pre_fork",
                                             "pre_exec",    "child_exit", "nworkers_changed", "on_exit"};

}  // namespace

bool configured(const config::settings& s, std::string_view name) {
    return std::any_of(s.hooks.begin(), s.hooks.end(), [&](const std::string& h) {
        return h.size() > name.size() && h.compare(0, name.size(), name) == 0 && h[name.size()] == '=';
    });
}

bool needs_master_python(const config::settings& s) {
    return std::any_of(std::begin(master_hook_names), std::end(master_hook_names),
                       [&](const char* n) { return configured(s, n); });
}

void configure(const config::settings& s) {
    auto list = py::import("builtins").attr("list")();
    for (auto& h : s.hooks) list.attr("append")({py::str(h)});
    module().attr("configure")({py::str(config::to_toml(s)), list});
}

void master_call(const char* name) {
    guarded(name, [&] { module().attr("master")({py::str(name)}); });
}

master::master_hooks master_side(const config::settings& s) {
    master::master_hooks h;
    auto simple = [&](const char* name) -> std::function<void()> {
        if (!configured(s, name)) return nullptr;
        return [name] { master_call(name); };
    };
    h.when_ready = simple("when_ready");
    h.on_reload = simple("on_reload");
    h.pre_exec = simple("pre_exec");
    h.on_exit = simple("on_exit");
    if (configured(s, "pre_fork"))
        h.pre_fork = [](pid_t, int age) { guarded("pre_fork", [&] { module().attr("pre_fork")({py::integer(age)}); }); };
    if (configured(s, "child_exit"))
        h.child_exit = [](pid_t pid, int age) {
            guarded("child_exit", [&] { module().attr("child_exit")({py::integer(pid), py::integer(age)}); });
        };
    if (configured(s, "nworkers_changed"))
        h.nworkers_changed = [](int now, int before) {
            guarded("nworkers_changed", [&] {
                module().attr("master")({py::str("nworkers_changed"), py::integer(now), py::integer(before)});
            });
        };
    return h;
}

void become_worker(int age) {
    guarded("post_fork", [&] { module().attr("become_worker")({py::integer(age)}); });
}

void worker_call(const char* name) {
    guarded(name, [&] { module().attr("worker")({py::str(name)}); });
}

py::object pre_request() { return module().attr("pre_request"); }
py::object post_request() { return module().attr("post_request"); }

}  // namespace gcorn::hooks
