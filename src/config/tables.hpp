// The lists the settings name, as tables read by every user (validators, main, the worker boot, the hooks layer):
// the worker classes and Gunicorn's server hooks. Adding one is adding a row here.
#pragma once
#include <optional>
#include <string_view>

namespace gcorn::config {

struct settings;

// ---- worker classes ----
enum class worker_kind { sync, gthread, async };

struct worker_class_row {
    std::string_view name;
    worker_kind kind;
};

// gevent and eventlet are aliases of gcorn's own async worker (DESIGN §3).
inline constexpr worker_class_row worker_classes[] = {
    {"sync", worker_kind::sync},     {"gthread", worker_kind::gthread},  {"async", worker_kind::async},
    {"gevent", worker_kind::async},  {"eventlet", worker_kind::async},
};

std::optional<worker_kind> find_worker_class(std::string_view name);
// The class a worker runs: as Gunicorn, `threads` > 1 with the default sync class means gthread.
worker_kind worker_kind_of(const settings& s);
// Its name as Gunicorn logs it ("Using worker: gthread" for sync with threads > 1; an alias as given).
std::string_view worker_class_name(const settings& s);

// ---- server hooks (Gunicorn's names and where they run) ----
enum class hook {
    on_starting, on_reload, when_ready, pre_fork, post_fork, post_worker_init, worker_int, worker_abort,
    pre_exec, pre_request, post_request, child_exit, worker_exit, nworkers_changed, on_exit, ssl_context,
};

struct hook_row {
    hook id;
    std::string_view name;
    bool in_master;  // runs in the master, which then starts Python (DESIGN §1)
};

inline constexpr hook_row hooks[] = {
    {hook::on_starting, "on_starting", true},        {hook::on_reload, "on_reload", true},
    {hook::when_ready, "when_ready", true},          {hook::pre_fork, "pre_fork", true},
    {hook::post_fork, "post_fork", false},           {hook::post_worker_init, "post_worker_init", false},
    {hook::worker_int, "worker_int", false},         {hook::worker_abort, "worker_abort", false},
    {hook::pre_exec, "pre_exec", true},              {hook::pre_request, "pre_request", false},
    {hook::post_request, "post_request", false},     {hook::child_exit, "child_exit", true},
    {hook::worker_exit, "worker_exit", false},       {hook::nworkers_changed, "nworkers_changed", true},
    {hook::on_exit, "on_exit", true},                {hook::ssl_context, "ssl_context", false},
};

std::optional<hook> find_hook(std::string_view name);
std::string_view name_of(hook h);

}  // namespace gcorn::config
