#include "config/gunicorn.hpp"

#include <algorithm>
#include <vector>

#include "config/settings.hpp"
#include "config/tables.hpp"

namespace gcorn::config {
namespace {

// Settings of gcorn's own that Gunicorn does not have.
constexpr std::string_view gcorn_only[] = {"monkey_patch", "gevent_monkey_patch", "hooks", "virtualenv", "script_name",
                                           "metrics_bind", "access_log_json", "max_worker_memory", "max_queue_time",
                                           "max_in_flight", "request_timeout", "block_warning", "header_timeout"};

const gunicorn_row* find(std::string_view name) {
    auto it = std::find_if(std::begin(gunicorn_settings), std::end(gunicorn_settings),
                           [&](const gunicorn_row& r) { return r.name == name; });
    return it == std::end(gunicorn_settings) ? nullptr : it;
}

std::string line(std::string_view name, std::string_view flags, std::string_view how, std::string_view note) {
    std::string f = flags.empty() ? "" : "`" + std::string(flags) + "`";
    for (size_t at; (at = f.find(',')) != std::string::npos;) f.replace(at, 1, "` `");
    return "| `" + std::string(name) + "` | " + f + " | " + std::string(how) + " | " + std::string(note) + " |\n";
}

}  // namespace

const gunicorn_row* refused_gunicorn_setting(std::string_view name) {
    auto* r = find(name);
    return r && r->how == support::refused ? r : nullptr;
}

std::string refusal(const gunicorn_row& row, std::string_view where) {
    return std::string(where) + "'" + std::string(row.name) + "' is a Gunicorn setting gcorn does not support: " +
           std::string(row.note);
}

std::string gunicorn_settings_markdown() {
    std::string out = "| Gunicorn setting | flags | in gcorn | notes |\n|---|---|---|---|\n";
    out += line("config", "-c,--config", "same", "TOML first; a gunicorn.conf.py or python:MODULE runs as Python");
    std::vector<std::string_view> ours;
    for (auto& r : setting_names()) {
        ours.push_back(r.name);
        if (std::find(std::begin(gcorn_only), std::end(gcorn_only), r.name) != std::end(gcorn_only)) continue;
        auto* g = find(r.name);
        out += line(r.name, r.cli, g ? "different" : "same", g ? g->note : "");
    }
    for (auto& r : gunicorn_settings)  // differences that are not a setting of gcorn's
        if (r.how == support::different && std::find(ours.begin(), ours.end(), r.name) == ours.end())
            out += line(r.name, r.flags, "different", r.note);
    out += line("check_config", "--check-config", "same", "");
    out += line("print_config", "--print-config", "same", "prints TOML");
    for (auto& h : hooks) out += line(h.name, "", "same", "a `[hooks]` entry, `--hook NAME=MODULE:FUNCTION` or a function in gunicorn.conf.py");
    for (auto& r : gunicorn_settings)
        if (r.how == support::refused) out += line(r.name, r.flags, "refused", r.note);
    return out;
}

}  // namespace gcorn::config
