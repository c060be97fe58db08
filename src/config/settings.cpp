#include "config/settings.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <toml.hpp>

#include "config/gunicorn.hpp"
#include "config/tables.hpp"
#include "config/validators.hpp"
#include "gcorn_build_config.hpp"

namespace gcorn::config {
namespace {

// ---- per-type conversions -------------------------------------------------------------------------------

std::string quote(std::string_view s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') out += '\\', out += char(c);
        else if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else out += char(c);
    }
    return out + "\"";
}

int parse(std::string_view s, int*) {
    std::string str(s);
    char* end = nullptr;
    errno = 0;
    long v = std::strtol(str.c_str(), &end, 10);
    if (str.empty() || *end != '\0' || errno || v < INT32_MIN || v > INT32_MAX)
        throw std::invalid_argument("'" + str + "' is not an integer");
    return int(v);
}
double parse(std::string_view s, double*) {
    std::string str(s);
    char* end = nullptr;
    double v = std::strtod(str.c_str(), &end);
    if (str.empty() || *end != '\0') throw std::invalid_argument("'" + str + "' is not a number");
    return v;
}
bool parse(std::string_view s, bool*) {
    if (s == "true" || s == "1" || s == "yes" || s == "on") return true;
    if (s == "false" || s == "0" || s == "no" || s == "off") return false;
    throw std::invalid_argument("'" + std::string(s) + "' is not a boolean");
}
std::string parse(std::string_view s, std::string*) { return std::string(s); }

int from_toml(const toml::value& v, int*) {
    if (!v.is_integer()) throw std::invalid_argument("expected an integer");
    auto n = v.as_integer();
    if (n < INT32_MIN || n > INT32_MAX) throw std::invalid_argument("out of range");
    return int(n);
}
double from_toml(const toml::value& v, double*) {
    if (v.is_integer()) return double(v.as_integer());
    if (!v.is_floating()) throw std::invalid_argument("expected a number");
    return v.as_floating();
}
bool from_toml(const toml::value& v, bool*) {
    if (!v.is_boolean()) throw std::invalid_argument("expected true or false");
    return v.as_boolean();
}
std::string from_toml(const toml::value& v, std::string*) {
    if (v.is_boolean()) return v.as_boolean() ? "true" : "false";  // proxy_protocol = true, from older configs
    if (v.is_integer()) {  // umask = 0o022 reads as an integer
        char buf[16];
        std::snprintf(buf, sizeof buf, "0o%llo", (unsigned long long)v.as_integer());
        return buf;
    }
    if (!v.is_string()) throw std::invalid_argument("expected a string");
    return v.as_string().str;
}
string_list from_toml(const toml::value& v, string_list*) {
    if (v.is_string()) return {v.as_string().str};
    if (!v.is_array()) throw std::invalid_argument("expected an array of strings");
    string_list out;
    for (auto& item : v.as_array()) {
        if (!item.is_string()) throw std::invalid_argument("expected an array of strings");
        out.push_back(item.as_string().str);
    }
    return out;
}

std::string format(int v, int*) { return std::to_string(v); }
std::string format(bool v, bool*) { return v ? "true" : "false"; }
std::string format(const std::string& v, std::string*) { return quote(v); }
std::string format(double v, double*) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    std::string s = buf;
    if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
    return s;
}
std::string format(const string_list& v, string_list*) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + quote(v[i]);
    return out + "]";
}

// logconfig_dict is a dictConfig: in TOML a table, held as JSON text until Python's logging reads it. Written
// here because toml11 has no JSON output and the config layer links no JSON library; 30 lines.
void append_json_string(std::string& out, const std::string& s) {
    out += '"';
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') out += '\\', out += char(c);
        else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else out += char(c);
    }
    out += '"';
}

void append_json(std::string& out, const toml::value& v) {
    if (v.is_table()) {
        out += '{';
        bool first = true;
        for (auto& [k, item] : v.as_table()) {
            if (!std::exchange(first, false)) out += ", ";
            append_json_string(out, k);
            out += ": ";
            append_json(out, item);
        }
        out += '}';
    } else if (v.is_array()) {
        out += '[';
        bool first = true;
        for (auto& item : v.as_array()) {
            if (!std::exchange(first, false)) out += ", ";
            append_json(out, item);
        }
        out += ']';
    } else if (v.is_string()) append_json_string(out, v.as_string().str);
    else if (v.is_boolean()) out += v.as_boolean() ? "true" : "false";
    else if (v.is_integer()) out += std::to_string(v.as_integer());
    else if (v.is_floating()) out += format(v.as_floating(), static_cast<double*>(nullptr));
    else throw std::invalid_argument("dates have no JSON form");
}

// ---- the generated rows ---------------------------------------------------------------------------------

// Lists given once per flag (-b A -b B); the other lists take comma-separated values, as in Gunicorn.
bool repeatable(std::string_view name) {
    return name == "bind" || name == "raw_env" || name == "hooks" || name == "raw_paste_global_conf" ||
           name == "reload_extra_files";
}

// TOML tables that stand for KEY=VALUE lists: [hooks] name = "mod:fn" and [env] KEY = "value".
const char* table_setting(std::string_view key) {
    if (key == "hooks") return "hooks";
    if (key == "env") return "raw_env";
    return nullptr;
}

// A metavar "MODE[=auto]": the flag may stand alone, meaning "auto" (Gunicorn's nargs="?"). Returns the bare
// flag's value, or "" for an ordinary metavar (KEY=VALUE and NAME=MODULE:FUNCTION are ordinary).
std::string_view bare_value(std::string_view meta) {
    auto open = meta.find("[=");
    return open != std::string_view::npos && meta.ends_with("]") ? meta.substr(open + 2, meta.size() - open - 3) : "";
}

struct row {
    std::string_view name, cli, meta, section, help;
    bool is_flag;
    std::function<void(settings&, const std::vector<std::string>&)> set_strings;
    std::function<void(settings&, const toml::value&)> set_toml;
    std::function<std::string(const settings&)> format;
};

template <class T, class Check>
row make_row(std::string_view name, std::string_view cli, std::string_view meta, std::string_view section,
             std::string_view help, T settings::*member, Check check) {
    auto assign = [=](settings& s, T v) {
        check(v);
        s.*member = std::move(v);
    };
    row r{name, cli, meta, section, help, std::is_same_v<T, bool>, {}, {}, {}};
    r.set_strings = [=](settings& s, const std::vector<std::string>& given) {
        if constexpr (std::is_same_v<T, string_list>) {
            string_list out;
            for (auto& g : given) {
                if (repeatable(name)) { out.push_back(g); continue; }
                std::stringstream in(g);
                for (std::string part; std::getline(in, part, ',');)
                    if (!part.empty()) out.push_back(part);
            }
            assign(s, std::move(out));
        } else {
            assign(s, parse(given.empty() ? "true" : given.back(), static_cast<T*>(nullptr)));
        }
    };
    r.set_toml = [=](settings& s, const toml::value& v) {
        if constexpr (std::is_same_v<T, std::string>) {
            if (name == "logconfig_dict" && v.is_table()) {
                std::string json;
                append_json(json, v);
                return assign(s, std::move(json));
            }
        }
        assign(s, from_toml(v, static_cast<T*>(nullptr)));
    };
    r.format = [=](const settings& s) { return format(s.*member, static_cast<T*>(nullptr)); };
    return r;
}

const std::vector<row>& rows() {
#define GCORN_ROW(name, type, def, cli, meta, section, chk, help)                                   \
    make_row<type>(#name, cli, meta, section, help, &settings::name, [](const type& v) { check::chk(v); }),
    static const std::vector<row> table{GCORN_SETTINGS(GCORN_ROW)};
#undef GCORN_ROW
    return table;
}

const row* find_row(std::string_view name) {
    for (auto& r : rows())
        if (r.name == name) return &r;
    return nullptr;
}

template <class F>
void naming(std::string_view where, std::string_view name, F&& f) {
    try {
        f();
    } catch (const std::invalid_argument& e) {
        throw config_error(std::string(where) + "setting '" + std::string(name) + "': " + e.what());
    }
}

// ---- the command line -----------------------------------------------------------------------------------

struct command_line {
    CLI::App app{"gcorn: a fast, Gunicorn-compatible WSGI HTTP server.", "gcorn"};
    std::vector<std::pair<const row*, CLI::Option*>> options;
    std::string config;
    std::vector<std::pair<const gunicorn_row*, CLI::Option*>> refused;
    std::vector<std::string> app_module;
    bool check = false, print = false, print_gunicorn = false, version = false;

    command_line() {
        app.set_help_flag("-h,--help", "Show this message and exit.");
        app.get_formatter()->column_width(40);
        app.add_option("-c,--config", config, "The configuration file: TOML, or Gunicorn's gunicorn.conf.py / python:MODULE.")
            ->type_name("FILE");
        app.add_flag("--check-config", check, "Check the configuration and the application, then exit.");
        app.add_flag("--print-config", print, "Print the effective configuration as TOML and exit.");
        app.add_flag("--print-gunicorn-settings", print_gunicorn,
                     "Print how every Gunicorn setting maps to gcorn (Markdown) and exit.");
        app.add_flag("-v,--version", version, "Print the version and exit.");
        add_refused_gunicorn_flags();
        for (auto& r : rows()) {
            if (r.cli.empty()) continue;
            auto bare = bare_value(r.meta);
            auto meta = bare.empty() ? r.meta : r.meta.substr(0, r.meta.find("[="));
            auto* opt = r.is_flag ? app.add_flag(std::string(r.cli))
                                  : app.add_option(std::string(r.cli))
                                        ->type_name(std::string(meta))
                                        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
            if (!bare.empty()) opt->expected(0, 1);  // "MODE[=auto]": the bare flag means auto
            opt->description(std::string(r.help));
            opt->group(std::string(r.section));
            options.emplace_back(&r, opt);
        }
        app.add_option("APP_MODULE", app_module, "The WSGI application, MODULE:VARIABLE.");
    }

    // Gunicorn's flags for settings gcorn refuses: taken, so that using one names it (not "not expected").
    void add_refused_gunicorn_flags() {
        for (auto& g : gunicorn_settings) {
            if (g.how != support::refused || g.flags.empty()) continue;
            auto* opt = g.takes_value ? app.add_option(std::string(g.flags))->allow_extra_args(false)
                                      : app.add_flag(std::string(g.flags));
            opt->group("");  // not shown in --help
            refused.emplace_back(&g, opt);
        }
    }

    void refuse_gunicorn_only(std::string_view source) const {
        for (auto& [g, opt] : refused)
            if (opt->count() > 0) {
                auto flag = g->flags.substr(g->flags.rfind(',') + 1);  // the long one, listed last
                throw config_error(refusal(*g, std::string(source) + std::string(flag) + ": "));
            }
    }

    void apply(settings& s, std::string_view source) const {
        refuse_gunicorn_only(source);
        for (auto& [r, opt] : options) {
            if (opt->count() == 0) continue;
            // A boolean whose flag is --no-NAME (Gunicorn's --no-sendfile) turns the setting off, unless the setting
            // is itself a NAME_disable (Gunicorn's --no-control-socket).
            bool turns_off = r->is_flag && r->cli.starts_with("--no-") && !std::string_view(r->name).ends_with("_disable");
            auto given = turns_off ? std::vector<std::string>{"false"} : opt->results();
            if (given.empty() && !bare_value(r->meta).empty()) given = {std::string(bare_value(r->meta))};
            naming(source, r->name, [&] { r->set_strings(s, given); });
        }
        if (!app_module.empty())
            naming(source, "wsgi_app", [&] { find_row("wsgi_app")->set_strings(s, app_module); });
    }
};

// `value` would be accepted for row `r` (it parses and passes the validator).
bool accepts(const row& r, const std::string& value) {
    settings scratch;
    try {
        r.set_strings(scratch, {value});
        return true;
    } catch (const std::exception&) {
        return false;
    }
}

// A flag whose value is optional ("--proxy-protocol") takes the next argument only if it is a valid value, so
// `--proxy-protocol app:app` does not swallow the app; otherwise its bare value is put in. CLI11 wants the
// arguments reversed.
std::vector<std::string> with_bare_flag_values(int argc, const char* const* argv) {
    std::vector<std::string> out;
    for (int i = 1; i < argc; ++i) {
        out.emplace_back(argv[i]);
        for (auto& r : rows()) {
            auto bare = bare_value(r.meta);
            if (bare.empty() || ("," + std::string(r.cli) + ",").find("," + out.back() + ",") == std::string::npos)
                continue;
            bool valued = i + 1 < argc && argv[i + 1][0] != '-' && accepts(r, argv[i + 1]);
            if (!valued) out.emplace_back(bare);
        }
    }
    std::reverse(out.begin(), out.end());
    return out;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw config_error("cannot read configuration file '" + path + "'");
    std::stringstream buf;
    buf << in.rdbuf();
    return buf.str();
}

// Gunicorn's environment defaults: WEB_CONCURRENCY, PORT and SCRIPT_NAME.
void apply_environment_defaults(settings& s) {
    auto env = [](const char* name) -> const char* {
        const char* v = std::getenv(name);
        return v && *v ? v : nullptr;
    };
    if (auto* n = env("WEB_CONCURRENCY")) naming("WEB_CONCURRENCY: ", "workers", [&] {
        find_row("workers")->set_strings(s, {n});
    });
    if (auto* port = env("PORT")) s.bind = {std::string("0.0.0.0:") + port};
    if (auto* sn = env("SCRIPT_NAME")) s.script_name = sn;
    if (auto* venv = env("VIRTUAL_ENV"))  // an activated virtualenv, checked as --virtualenv is
        naming("VIRTUAL_ENV: ", "virtualenv", [&] { find_row("virtualenv")->set_strings(s, {venv}); });
}

// A TOML document; a syntax error names the file and line (toml11's message does).
toml::value parse_toml(std::string_view text, const std::string& file_name) {
    try {
        std::istringstream in{std::string(text)};
        return toml::parse(in, file_name);
    } catch (const std::exception& e) {
        throw config_error(e.what());
    }
}

// Without -c: ./gcorn.toml, else Gunicorn's ./gunicorn.conf.py (as Gunicorn looks for it).
std::string default_config_file() {
    struct stat st{};
    for (const char* name : {"gcorn.toml", "gunicorn.conf.py"})
        if (::stat(name, &st) == 0) return name;
    return "";
}

// What a gunicorn.conf.py may set: gcorn's settings and the Gunicorn settings gcorn refuses (so they are named).
std::string names_of_settings() {
    std::string out;
    for (auto& r : rows()) out += (out.empty() ? "" : ",") + std::string(r.name);
    for (auto& g : gunicorn_settings)
        if (g.how == support::refused && !find_hook(g.name)) out += "," + std::string(g.name);
    return out;
}

std::string names_of_hooks() {
    std::string out;
    for (auto& h : hooks) out += (out.empty() ? "" : ",") + std::string(h.name);
    return out;
}

void read_python_config(settings& s, const python_reader& python) {
    if (!python) throw config_error("'" + s.config_file + "': Python configuration files are not available here");
    apply_python_answer(s, python(s.config_file, names_of_settings(), names_of_hooks()), s.config_file);
}

}  // namespace

int settings::umask_value() const { return check::parse_umask(umask); }

std::string settings::app_name() const {
    if (!proc_name.empty()) return proc_name;
    return wsgi_app.empty() ? paste : wsgi_app;  // Gunicorn names a paste deployment after its file
}

void apply_toml(settings& s, std::string_view text, const std::string& file_name) {
    toml::value doc = parse_toml(text, file_name);
    std::vector<std::pair<std::string, const toml::value*>> tables;
    for (auto& [key, value] : doc.as_table()) {
        auto where = file_name + ":" + std::to_string(value.location().line()) + ": ";
        if (table_setting(key) && value.is_table()) {
            tables.emplace_back(key, &value);
            continue;
        }
        const row* r = find_row(key);
        if (!r && refused_gunicorn_setting(key)) throw config_error(refusal(*refused_gunicorn_setting(key), where));
        if (!r) throw config_error(where + "unknown setting '" + key + "'");
        naming(where, key, [&] { r->set_toml(s, value); });
    }
    // [env] / [hooks] entries come after a raw_env / hooks array of the same file, so their keys win
    // (setenv: last one wins), whatever order the TOML document lists them in.
    for (auto& [key, value] : tables) {
        auto where = file_name + ":" + std::to_string(value->location().line()) + ": ";
        auto* name = table_setting(key);
        string_list entries = name == std::string_view("raw_env") ? s.raw_env : s.hooks;
        for (auto& [k, v] : value->as_table()) {
            if (!v.is_string()) throw config_error(where + "[" + key + "] " + k + ": expected a string");
            entries.push_back(k + "=" + v.as_string().str);
        }
        naming(where, name, [&] { find_row(name)->set_strings(s, entries); });
    }
}

std::vector<setting_name> setting_names() {
    std::vector<setting_name> out;
    for (auto& r : rows()) out.push_back({r.name, r.cli});
    return out;
}

bool is_python_config(std::string_view source) { return source.ends_with(".py") || source.starts_with("python:"); }

void apply_python_answer(settings& s, std::string_view text, const std::string& file_name) {
    toml::value doc = parse_toml(text, file_name);
    auto where = file_name + ": ";
    for (auto& [key, value] : toml::find(doc, "settings").as_table()) {
        if (auto* g = refused_gunicorn_setting(key)) throw config_error(refusal(*g, where));
        string_list given;
        for (auto& item : value.as_array()) given.push_back(item.as_string().str);
        naming(where, key, [&] { find_row(key)->set_strings(s, given); });
    }
    string_list hooks = s.hooks, env = s.raw_env;
    for (auto& [name, spec] : toml::find(doc, "hooks").as_table()) hooks.push_back(name + "=" + spec.as_string().str);
    for (auto& [k, v] : toml::find(doc, "env").as_table()) env.push_back(k + "=" + v.as_string().str);
    naming(where, "hooks", [&] { find_row("hooks")->set_strings(s, hooks); });
    naming(where, "raw_env", [&] { find_row("raw_env")->set_strings(s, env); });
}

loaded load(int argc, const char* const* argv, const python_reader& python) {
    loaded out;
    command_line cli, env;
    try {
        cli.app.parse(with_bare_flag_values(argc, argv));
    } catch (const CLI::CallForHelp&) {
        out.what = action::help;
        out.help_text = cli.app.help();
        return out;
    } catch (const CLI::ParseError& e) {
        throw config_error(e.what());
    }
    if (cli.version) return out.what = action::version, out;
    if (cli.print_gunicorn) {
        out.what = action::help;
        out.help_text = gunicorn_settings_markdown();
        return out;
    }
    // GCORN_CMD_ARGS, or Gunicorn's GUNICORN_CMD_ARGS for a drop-in deployment (gcorn's own wins).
    const char* env_name = std::getenv("GCORN_CMD_ARGS") ? "GCORN_CMD_ARGS" : "GUNICORN_CMD_ARGS";
    std::string env_where = std::string(env_name) + ": ";
    if (auto* args = std::getenv(env_name)) {
        try {
            env.app.parse(args, false);
        } catch (const CLI::ParseError& e) {
            throw config_error(env_where + e.what());
        }
    }

    settings& s = out.values;
    apply_environment_defaults(s);
    s.config_file = !cli.config.empty() ? cli.config : !env.config.empty() ? env.config : default_config_file();
    if (is_python_config(s.config_file)) read_python_config(s, python);
    else if (!s.config_file.empty()) apply_toml(s, read_file(s.config_file), s.config_file);
    env.apply(s, env_where);
    cli.apply(s, "");

    if (cli.print || env.print) out.what = action::print_config;
    else if (cli.check || env.check) out.what = action::check_config;
    if (out.what != action::print_config && s.wsgi_app.empty() && s.paste.empty())
        throw config_error("no application given: pass APP_MODULE (e.g. myproject.wsgi:application) "
                           "or set wsgi_app in the configuration file");
    return out;
}

settings reload(int argc, const char* const* argv, const python_reader& python) {
    return load(argc, argv, python).values;
}

std::string to_toml(const settings& s) {
    std::string out = "# gcorn " GCORN_VERSION " configuration. Every key is a setting; `gcorn -c FILE` reads it.\n";
    std::string_view section;
    for (auto& r : rows()) {
        if (r.section != section) {
            section = r.section;
            out += "\n# ---- " + std::string(section) + " ----\n";
        }
        out += "\n# " + std::string(r.help);
        if (!r.cli.empty()) out += " [" + std::string(r.cli) + "]";
        out += "\n" + std::string(r.name) + " = " + r.format(s) + "\n";
    }
    return out;
}

}  // namespace gcorn::config
