// Gunicorn's settings that gcorn treats differently or refuses, by name (Gunicorn 26.1). Every other Gunicorn
// setting is a row of the settings table under the same name, flag and default. A refused setting is an error
// that names it and says what to use instead, on the command line, in TOML and in a gunicorn.conf.py — never an
// "argument was not expected". `gcorn --print-gunicorn-settings` renders the whole mapping for the README.
#pragma once
#include <string>
#include <string_view>

namespace gcorn::config {

enum class support { different, refused };

struct gunicorn_row {
    std::string_view name;   // Gunicorn's setting name
    std::string_view flags;  // its command-line flags, comma-separated ("" = file only)
    bool takes_value;        // the flag is followed by a value (for refused flags: so the value is consumed)
    support how;
    std::string_view note;   // different: how; refused: why, and what to use instead
};

inline constexpr gunicorn_row gunicorn_settings[] = {
    // ---- settings gcorn has, with a difference ----
    {"worker_class", "-k,--worker-class", true, support::different,
     "sync, gthread and async; gevent and eventlet name gcorn's own greenlet worker; Python class paths are refused"},
    {"worker_tmp_dir", "--worker-tmp-dir", true, support::different,
     "accepted and not needed: heartbeats live in shared memory, not in files"},
    {"do_handshake_on_connect", "--do-handshake-on-connect", false, support::different,
     "accepted: the TLS handshake always completes before the first request is read"},
    {"tmp_upload_dir", "", true, support::different,
     "accepted and unused, as in Gunicorn (which never reads it): gcorn never spools request bodies"},
    {"default_proc_name", "", false, support::different, "proc_name falls back to the app's name"},
    {"secure_scheme_headers", "", false, support::different,
     "a list of HEADER=VALUE strings in TOML; a gunicorn.conf.py dict is converted"},

    // ---- refused: not in gcorn (yet), with what to use instead ----
    {"logger_class", "--logger-class", true, support::refused, "gcorn's logging is native; use accesslog/errorlog"},
    {"protocol", "--protocol", true, support::refused, "gcorn speaks HTTP/1.1 only (no uwsgi protocol)"},
    {"uwsgi_allow_ips", "--uwsgi-allow-from", true, support::refused, "gcorn speaks HTTP/1.1 only (see protocol)"},
    {"http_protocols", "--http-protocols", true, support::refused, "gcorn speaks HTTP/1.1; put HTTP/2 in front (nginx)"},
    {"tolerate_dangerous_framing", "--tolerate-dangerous-framing", false, support::refused,
     "both Content-Length and Transfer-Encoding is always a 400 (request smuggling, RFC 9112 §6.3; Gunicorn 22-23)"},
    {"asgi_loop", "--asgi-loop", true, support::refused, "gcorn serves WSGI only"},
    {"asgi_lifespan", "--asgi-lifespan", true, support::refused, "gcorn serves WSGI only"},
    {"asgi_disconnect_grace_period", "--asgi-disconnect-grace-period", true, support::refused,
     "gcorn serves WSGI only"},
    {"http_parser", "--http-parser", true, support::refused, "gcorn has one strict HTTP/1.1 parser"},
    {"root_path", "--root-path", true, support::refused, "ASGI only; WSGI apps get script_name"},
    {"dirty_apps", "--dirty-app", true, support::refused, "Gunicorn's dirty arbiters have no gcorn equivalent"},
    {"dirty_workers", "--dirty-workers", true, support::refused, "see dirty_apps"},
    {"dirty_timeout", "--dirty-timeout", true, support::refused, "see dirty_apps"},
    {"dirty_threads", "--dirty-threads", true, support::refused, "see dirty_apps"},
    {"dirty_graceful_timeout", "--dirty-graceful-timeout", true, support::refused, "see dirty_apps"},
    {"on_dirty_starting", "", false, support::refused, "see dirty_apps"},
    {"dirty_post_fork", "", false, support::refused, "see dirty_apps"},
    {"dirty_worker_init", "", false, support::refused, "see dirty_apps"},
    {"dirty_worker_exit", "", false, support::refused, "see dirty_apps"},
    {"control_socket", "--control-socket", true, support::different,
     "off unless set (Gunicorn creates $XDG_RUNTIME_DIR/gunicorn.ctl); speaks `gcorn ctl`'s line protocol, not gunicornc's"},
};

// The row for a refused Gunicorn setting, or null.
const gunicorn_row* refused_gunicorn_setting(std::string_view name);

// The error for using it (`where`: "file:line: ", "--flag: ", ...).
std::string refusal(const gunicorn_row& row, std::string_view where);

// Markdown: every Gunicorn setting and what gcorn does with it (same, different, refused), from this table, the
// hook table and the settings table, for README.md.
std::string gunicorn_settings_markdown();

}  // namespace gcorn::config
