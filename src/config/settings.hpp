// gcorn's settings: the typed struct generated from settings_table.hpp and the ways to fill it.
// Knows nothing of processes, sockets or Python; everything else reads a finished `settings`.
#pragma once
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "config/settings_table.hpp"

namespace gcorn::config {

using string_list = std::vector<std::string>;

inline constexpr const char* default_access_log_format =
    R"(%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s")";

struct settings {
#define GCORN_FIELD(name, type, def, cli, meta, section, check, help) type name = type(def);
    GCORN_SETTINGS(GCORN_FIELD)
#undef GCORN_FIELD

    std::string config_file;  // where the TOML came from, for messages and HUP
    int umask_value() const;  // `umask` parsed (validated on load)
    std::string app_name() const;  // for process titles and logs: proc_name, else the app (or paste file)
};

// A bad command line, file or value; `what()` names the setting (and file:line).
struct config_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// What the command line asked for besides settings.
enum class action { serve, check_config, print_config, version, help };

struct loaded {
    settings values;
    action what = action::serve;
    std::string help_text;  // for action::help
};

// Runs a Python configuration file (gunicorn.conf.py, or python:MODULE) and answers its settings as TOML tables:
// [settings] NAME = ["value", ...] as the command line would give them, [hooks] NAME = "spec", [env] KEY = "v".
// Given the names of every setting and hook, comma-separated. Throws config_error. Injected by main: config/
// runs no Python itself.
using python_reader = std::function<std::string(const std::string& source, const std::string& setting_names,
                                                const std::string& hook_names)>;

// The settings table's names and flags, in order (for generated documentation).
struct setting_name {
    std::string_view name, cli;
};
std::vector<setting_name> setting_names();

// A configuration file to run as Python rather than read as TOML.
bool is_python_config(std::string_view source);

// Defaults < configuration file (-c; else ./gcorn.toml, else ./gunicorn.conf.py) < GCORN_CMD_ARGS (or
// GUNICORN_CMD_ARGS when it is not set) < argv. Throws config_error.
loaded load(int argc, const char* const* argv, const python_reader& python = {});

// Re-reads the same sources (for HUP). Throws config_error.
settings reload(int argc, const char* const* argv, const python_reader& python = {});

// Every setting as TOML that `-c` accepts back unchanged, each preceded by its help as a comment.
std::string to_toml(const settings& s);

// Parses a TOML document (file name used in messages) on top of `s`.
void apply_toml(settings& s, std::string_view text, const std::string& file_name);

// Applies what a python_reader answered for `file_name` on top of `s`.
void apply_python_answer(settings& s, std::string_view text, const std::string& file_name);

}  // namespace gcorn::config
