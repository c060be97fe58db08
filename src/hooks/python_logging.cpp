#include "hooks/python_logging.hpp"

#include <cstdio>

#include "log/log.hpp"
#include "py/gil.hpp"
#include "py/object.hpp"

namespace gcorn::hooks {
namespace {

// spdlog's levels as logging's numbers, and back.
int python_level(spdlog::level::level_enum l) {
    switch (l) {
        case spdlog::level::trace:
        case spdlog::level::debug: return 10;
        case spdlog::level::info: return 20;
        case spdlog::level::warn: return 30;
        case spdlog::level::err: return 40;
        default: return 50;
    }
}

spdlog::level::level_enum spdlog_level(long long python) {
    if (python <= 10) return spdlog::level::debug;
    if (python <= 20) return spdlog::level::info;
    if (python <= 30) return spdlog::level::warn;
    if (python <= 40) return spdlog::level::err;
    return spdlog::level::critical;
}

// A logging handler that fails has no log left to report to: stderr, as logging's own handleError does.
void report(const py::python_error& e) { std::fprintf(stderr, "gcorn: Python logging failed: %s\n", e.what()); }

// The module's functions, alive for the process (forked workers inherit them).
struct functions {
    py::object error, access, reopen;
};
functions* fns = nullptr;

}  // namespace

void install_python_logging(const config::settings& s) {
    if (!log::wants_python_logging(s)) return;
    auto module = py::import("gcorn._logging");
    auto lowest = py::to_integer(module.attr("setup")({py::str(config::to_toml(s))}));
    fns = new functions{module.attr("error"), module.attr("access"), module.attr("reopen")};  // never freed
    log::external e;
    e.level = spdlog_level(lowest);
    e.error = [](spdlog::level::level_enum level, std::string_view message) {
        py::gil_acquire gil;
        try {
            fns->error({py::integer(python_level(level)), py::str(message)});
        } catch (const py::python_error& err) {
            report(err);
        }
    };
    if (log::wants_access_log(s)) {
        e.access = [format = s.access_log_format, json = log::access_format::of(s)](const log::access_entry& entry) {
            auto atoms = log::atoms(entry, format);
            // JSON: the record's message is the JSON line; its args are still the atoms, for formatters reading them.
            auto line = json.json() ? json.render(entry) : std::string();
            py::gil_acquire gil;
            try {
                auto dict = py::dict();
                // UTF-8 (what the plain access log writes too); environ values come UTF-8-encoded from environ_lookup.
                for (auto& [k, v] : atoms) py::set_item(dict, py::str(k), py::str(v));
                if (json.json()) fns->access({dict, py::str(line)});
                else fns->access({dict});
            } catch (const py::python_error& err) {
                report(err);
            }
        };
    }
    e.reopen = [] {
        py::gil_acquire gil;
        try {
            fns->reopen();
        } catch (const py::python_error& err) {
            report(err);
        }
    };
    log::forward_to(std::move(e));
}

}  // namespace gcorn::hooks
