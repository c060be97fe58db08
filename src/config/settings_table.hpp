// The settings table: the single source of truth for every gcorn setting (DESIGN §5).
// Knows nothing of how settings are used; the CLI, TOML loader, --print-config and docs are generated from it.
#pragma once

// X(name, type, default, cli_flags, metavar, section, check, help)
//   name     the setting's name and TOML key (Gunicorn's name where one exists)
//   type     int | double | bool | std::string | string_list
//   cli      CLI11 flag spec with Gunicorn's flag names ("" = file only); a bool whose flag is --no-X turns it off
//   metavar  the value's name in --help; "NAME[=VALUE]": the flag may stand alone, meaning VALUE (Gunicorn's nargs="?")
//   check    a validator from validators.hpp, applied to every source alike
// Adding a setting is adding one row here; nothing else needs to change for it to be
// parsed, validated, printed and documented.
#define GCORN_SETTINGS(X)                                                                                     \
    X(wsgi_app, std::string, "", "", "APP_MODULE", "server", any,                                            \
      "The WSGI application as MODULE:VARIABLE or MODULE:FACTORY(ARGS); the positional argument sets it.")   \
    X(paste, std::string, "", "--paste,--paster", "FILE", "server", readable_paste,                           \
      "Load the app from a PasteDeploy configuration file (FILE or FILE#name) instead of APP_MODULE.")       \
    X(raw_paste_global_conf, string_list, (string_list{}), "--paste-global", "KEY=VALUE", "server", key_value, \
      "Global variables for the PasteDeploy file ([DEFAULT] values). Repeat for several.")                   \
    X(bind, string_list, (string_list{"127.0.0.1:8000"}), "-b,--bind", "ADDRESS", "server", bind_addresses,               \
      "Sockets to bind: HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N. Repeat for several.")                   \
    X(backlog, int, 2048, "--backlog", "INT", "server", positive,                                            \
      "The maximum number of pending connections the kernel queues per listener.")                           \
    X(reuse_port, bool, false, "--reuse-port", "", "server", any,                                            \
      "Set SO_REUSEPORT on listeners.")                                                                      \
    X(workers, int, 1, "-w,--workers", "INT", "worker processes", positive,                                  \
      "The number of worker processes serving requests.")                                                    \
    X(worker_class, std::string, "sync", "-k,--worker-class", "STRING", "worker processes", worker_class,    \
      "The worker type: sync, gthread or async (gevent and eventlet are aliases of async).")                 \
    X(threads, int, 1, "--threads", "INT", "worker processes", positive,                                     \
      "Threads per worker for the gthread worker class.")                                                    \
    X(worker_connections, int, 1000, "--worker-connections", "INT", "worker processes", positive,            \
      "The maximum number of simultaneous connections per async or gthread worker.")                         \
    X(monkey_patch, bool, true, "", "", "worker processes", any,                                            \
      "Make the standard library cooperative (gcorn.monkey.patch_all) before the async worker imports the app.") \
    X(gevent_monkey_patch, bool, false, "", "", "worker processes", any,                                     \
      "Also gevent.monkey.patch_all() in each async worker before the app is imported (set by a gunicorn.conf.py that patches with gevent).") \
    X(max_requests, int, 0, "--max-requests", "INT", "worker processes", non_negative,                       \
      "Restart a worker after it has served this many requests (0 disables).")                               \
    X(max_requests_jitter, int, 0, "--max-requests-jitter", "INT", "worker processes", non_negative,         \
      "A random 0..N added to max_requests per worker, so workers do not restart together.")                 \
    X(max_worker_memory, int, 0, "--max-worker-memory", "MIB", "worker processes", non_negative,           \
      "Replace a worker whose resident memory (RSS) exceeds this many MiB, checked after each request and on the heartbeat; it finishes what it serves first, as with max_requests (0 disables).") \
    X(request_timeout, double, 0.0, "--request-timeout", "SECONDS", "worker processes", non_negative,        \
      "A request still running this long after the app was called gets gcorn.RequestTimeout raised in it and a 504 if no response was started; the worker and its other requests live on (0 disables). The app may move it: environ[\"gcorn.deadline\"](seconds).") \
    X(block_warning, int, 100, "--block-warning", "MS", "worker processes", non_negative,                     \
      "Async worker: log once, with its request and Python stack, a greenlet that keeps the event loop from turning for longer than this (0 disables).") \
    X(max_queue_time, double, 0.0, "--max-queue-time", "SECONDS", "worker processes", non_negative,          \
      "Answer 503 with Retry-After, without running the app, to a request that already waited longer than this since accept (or a trusted proxy's X-Request-Start); 0 disables.") \
    X(max_in_flight, int, 0, "--max-in-flight", "INT", "worker processes", non_negative,                     \
      "An async or gthread worker stops accepting connections while this many requests run in it (0: no limit but worker_connections).") \
    X(timeout, double, 30.0, "-t,--timeout", "SECONDS", "worker processes", non_negative,                    \
      "Workers silent for longer than this are killed and restarted (0 disables).")                          \
    X(graceful_timeout, double, 30.0, "--graceful-timeout", "SECONDS", "worker processes", non_negative,     \
      "How long workers may finish in-flight requests after a graceful stop before they are killed.")        \
    X(keepalive, double, 2.0, "--keep-alive", "SECONDS", "worker processes", non_negative,                   \
      "How long to wait for the next request on a keep-alive connection.")                                   \
    X(header_timeout, double, 10.0, "--header-timeout", "SECONDS", "worker processes", non_negative,         \
      "A request head must arrive whole within this, or the client gets 408 and a close (at most timeout; 0: timeout).") \
    X(limit_request_line, int, 4094, "--limit-request-line", "INT", "security", limit_line,                  \
      "The maximum size of the HTTP request line in bytes (0, or more than 8190: 8190).")                    \
    X(limit_request_fields, int, 100, "--limit-request-fields", "INT", "security", limit_fields,             \
      "The maximum number of header fields in a request (0, or more than 32768: 32768).")                    \
    X(limit_request_field_size, int, 8190, "--limit-request-field_size", "INT", "security", non_negative,    \
      "The maximum size of one request header field in bytes (0 = unlimited).")                              \
    X(forwarded_allow_ips, string_list, (string_list{"127.0.0.1", "::1"}), "--forwarded-allow-ips", "STRING", "security", \
      ip_networks, "Front ends trusted to set X-Forwarded-* headers: addresses or CIDR networks, comma-separated (* for any).") \
    X(header_map, std::string, "drop", "--header-map", "STRING", "security", header_map,                     \
      "Field names with '_' (they alias '-' in environ): drop them, refuse the request (400), or dangerous: map them.") \
    X(forwarder_headers, string_list, (string_list{"SCRIPT_NAME", "PATH_INFO"}), "--forwarder-headers", "STRING", \
      "security", any, "Field names with '_' a trusted front end (forwarded_allow_ips) may set, comma-separated; a SCRIPT_NAME header mounts the app there.") \
    X(strip_header_spaces, bool, false, "--strip-header-spaces", "", "security", any,                        \
      "Accept whitespace between a field name and its colon (refused by default: a request smuggling vector).") \
    X(permit_obsolete_folding, bool, false, "--permit-obsolete-folding", "", "security", any,                \
      "Accept obsolete line folding (a line starting with whitespace continues the previous field value).")   \
    X(permit_unconventional_http_method, bool, false, "--permit-unconventional-http-method", "", "security", any, \
      "Accept any token as method: lower case, or longer than 20 characters.")            \
    X(permit_unconventional_http_version, bool, false, "--permit-unconventional-http-version", "", "security", any, \
      "Accept any HTTP/D.D: below 1.0 served as 1.0, 2.0 and above as 1.1 (SERVER_PROTOCOL says what was sent).") \
    X(casefold_http_method, bool, false, "--casefold-http-method", "", "security", any,                      \
      "Upper-case the method before the app sees it (with permit_unconventional_http_method).")            \
    X(secure_scheme_headers, string_list,                                                                    \
      (string_list{"X-FORWARDED-PROTOCOL=ssl", "X-FORWARDED-PROTO=https", "X-FORWARDED-SSL=on"}), "", "HEADER=VALUE", \
      "security", key_value, "Headers (and values) by which a trusted front end says the client used https.") \
    X(proxy_protocol, std::string, "off", "--proxy-protocol", "MODE[=auto]", "security", proxy_protocol,       \
      "off, v1, v2 or auto (the bare flag): front ends in proxy_allow_ips send a PROXY header naming the client.") \
    X(proxy_allow_ips, string_list, (string_list{"127.0.0.1", "::1"}), "--proxy-allow-from", "STRING", "security", \
      ip_networks, "Front ends that send PROXY protocol headers: addresses or CIDR networks, comma-separated (* for any).") \
    X(certfile, std::string, "", "--certfile", "FILE", "ssl", readable_file,                                 \
      "The TLS certificate (PEM, with its chain). Setting it serves HTTPS on every listener.")               \
    X(keyfile, std::string, "", "--keyfile", "FILE", "ssl", readable_file,                                   \
      "The TLS private key (PEM; default: read from certfile).")                                             \
    X(ca_certs, std::string, "", "--ca-certs", "FILE", "ssl", readable_file,                                 \
      "CA certificates (PEM) that client certificates are verified against.")                                \
    X(cert_reqs, int, 0, "--cert-reqs", "INT", "ssl", cert_reqs,                                             \
      "Client certificates (ssl.CERT_*): 0 none, 1 optional, 2 required; the app gets environ['gcorn.peercert'] (PEM).") \
    X(ssl_version, std::string, "TLS_SERVER", "--ssl-version", "STRING", "ssl", ssl_version,                  \
      "The oldest TLS version accepted (TLSv1 .. TLSv1_3); TLS_SERVER, TLS or SSLv23 keep OpenSSL's default.") \
    X(ciphers, std::string, "", "--ciphers", "STRING", "ssl", any,                                           \
      "The OpenSSL cipher list for TLS 1.2 and older (default: OpenSSL's).")                                 \
    X(do_handshake_on_connect, bool, false, "--do-handshake-on-connect", "", "ssl", any,                     \
      "Accepted for Gunicorn compatibility: the TLS handshake always completes before the first request is read.") \
    X(suppress_ragged_eofs, bool, true, "--suppress-ragged-eofs", "", "ssl", any,                            \
      "Treat a client that closes TCP without a TLS close_notify as a normal end of stream.")               \
    X(preload_app, bool, false, "--preload", "", "server mechanics", any,                                    \
      "Load the application in the master before forking workers.")                                          \
    X(sendfile, bool, true, "--no-sendfile", "", "server mechanics", any,                             \
      "Send wsgi.file_wrapper responses with sendfile(2) (--no-sendfile: read and write them instead).")       \
    X(chdir, std::string, "", "--chdir", "PATH", "server mechanics", directory,                              \
      "Change to this directory before loading the application.")                                            \
    X(pythonpath, string_list, (string_list{}), "--pythonpath", "PATHS", "server mechanics", any,                         \
      "Directories added to the Python path (comma-separated).")                                             \
    X(virtualenv, std::string, "", "--virtualenv", "DIR", "server mechanics", virtualenv,                    \
      "A virtualenv (default: $VIRTUAL_ENV) made from the Python gcorn runs; its site-packages are added after pythonpath.") \
    X(raw_env, string_list, (string_list{}), "-e,--env", "KEY=VALUE", "server mechanics", key_value,                      \
      "Environment variables set in the workers. Repeat for several.")                                       \
    X(script_name, std::string, "", "--script-name", "PATH", "server mechanics", any,                        \
      "SCRIPT_NAME for the application (default: the SCRIPT_NAME environment variable).")                    \
    X(pidfile, std::string, "", "-p,--pid", "FILE", "server mechanics", any,                                 \
      "A file to write the master's PID to.")                                                                \
    X(daemon, bool, false, "-D,--daemon", "", "server mechanics", any,                                       \
      "Detach from the terminal and run in the background.")                                                 \
    X(enable_stdio_inheritance, bool, false, "-R,--enable-stdio-inheritance", "", "server mechanics", any,    \
      "With daemon: keep stdin, stdout and stderr instead of pointing them at /dev/null.")                   \
    X(user, std::string, "", "-u,--user", "USER", "server mechanics", any,                                   \
      "Switch worker processes to this user (name or uid) after binding.")                                   \
    X(group, std::string, "", "-g,--group", "GROUP", "server mechanics", any,                                \
      "Switch worker processes to this group (name or gid) after binding.")                                  \
    X(initgroups, bool, false, "--initgroups", "", "server mechanics", any,                                  \
      "Also set the user's supplementary groups when switching user.")                                       \
    X(worker_tmp_dir, std::string, "", "--worker-tmp-dir", "DIR", "server mechanics", any,                   \
      "Accepted for Gunicorn compatibility and unused: heartbeats live in shared memory (the scoreboard).") \
    X(umask, std::string, "0", "-m,--umask", "INT", "server mechanics", umask,                               \
      "The file mode creation mask of gcorn's processes (octal like 0o22 or 022).")                          \
    X(proc_name, std::string, "", "-n,--name", "STRING", "server mechanics", any,                            \
      "A name for the process titles (default: the application).")                                           \
    X(hooks, string_list, (string_list{}), "--hook", "NAME=MODULE:FUNCTION", "server hooks", hook_specs,        \
      "Server hooks, as Gunicorn's (post_fork, pre_request, ...); in TOML a [hooks] table. Repeat for several.") \
    X(accesslog, std::string, "", "--access-logfile", "FILE", "logging", any,                                \
      "The access log file ('-' for stdout; empty disables).")                                               \
    X(access_log_format, std::string, default_access_log_format, "--access-logformat,--access-log-format", "STRING", \
      "logging", access_format, "The access log format, in Gunicorn's %(atom)s syntax; 'json' is access_log_json.") \
    X(access_log_json, bool, false, "--access-log-json", "", "logging", any,                                 \
      "Write the access log as one JSON object per request (fields in README.md); access_log_format is then ignored.") \
    X(errorlog, std::string, "-", "--error-logfile,--log-file", "FILE", "logging", any,                      \
      "The error log file ('-' for stderr).")                                                                \
    X(loglevel, std::string, "info", "--log-level", "LEVEL", "logging", log_level,                           \
      "The error log level: debug, info, warning, error or critical.")                                       \
    X(capture_output, bool, false, "--capture-output", "", "logging", any,                                   \
      "Redirect the workers' stdout and stderr to the error log file.")                                      \
    X(logconfig, std::string, "", "--log-config", "FILE", "logging", readable_file,                          \
      "A Python logging configuration file (fileConfig); error and access lines then go through Python's logging as gunicorn.error and gunicorn.access.") \
    X(logconfig_dict, std::string, "", "", "JSON", "logging", any,                                           \
      "A logging dictConfig (a TOML table, a dict in gunicorn.conf.py), merged over Gunicorn's defaults.")   \
    X(logconfig_json, std::string, "", "--log-config-json", "FILE", "logging", readable_file,                \
      "A JSON file holding a logging dictConfig, merged over Gunicorn's defaults.")                          \
    X(syslog, bool, false, "--log-syslog", "", "logging", any,                                               \
      "Also send error (and access) lines to syslog at syslog_addr, as Gunicorn's SysLogHandler.")            \
    X(syslog_addr, std::string, "udp://localhost:514", "--log-syslog-to", "SYSLOG_ADDR", "logging", syslog_address, \
      "Where syslog is: udp://HOST:PORT, tcp://HOST:PORT or unix://PATH[#dgram|#stream].")                 \
    X(syslog_prefix, std::string, "", "--log-syslog-prefix", "SYSLOG_PREFIX", "logging", any,                \
      "The program name in syslog lines (gunicorn.PREFIX.error; default: the process name).")              \
    X(syslog_facility, std::string, "user", "--log-syslog-facility", "SYSLOG_FACILITY", "logging", syslog_facility, \
      "The syslog facility: user, daemon, local0 ... local7, ...")                                          \
    X(disable_redirect_access_to_syslog, bool, false, "--disable-redirect-access-to-syslog", "", "logging", any, \
      "With syslog: send only error lines there, not access lines.")                                        \
    X(statsd_host, std::string, "", "--statsd-host", "STATSD_ADDR", "logging", statsd_address,               \
      "Send Gunicorn's statsd metrics to HOST:PORT (UDP) or unix://PATH (datagrams).")                        \
    X(statsd_prefix, std::string, "", "--statsd-prefix", "STATSD_PREFIX", "logging", any,                    \
      "A prefix for the statsd metric names (a trailing '.' is added if missing).")                          \
    X(dogstatsd_tags, std::string, "", "--dogstatsd-tags", "DOGSTATSD_TAGS", "logging", any,                 \
      "Datadog tags appended to every statsd metric: 'tag1:value1,tag2:value2'.")                            \
    X(reload, bool, false, "--reload", "", "debugging", any,                                                \
      "Replace the workers when a file they imported (or reload_extra_files) changes; an edit that breaks the app keeps the old workers serving.") \
    X(reload_engine, std::string, "auto", "--reload-engine", "STRING", "debugging", reload_engine,           \
      "How reload notices changes: auto (inotify), inotify, or poll (modification times, every second).")  \
    X(reload_extra_files, string_list, (string_list{}), "--reload-extra-file", "FILES", "debugging", any,    \
      "More files (or glob patterns) that trigger reload: templates, configuration. Repeat for several.")    \
    X(enable_backlog_metric, bool, false, "--enable-backlog-metric", "", "logging", any,                     \
      "Send statsd the connections waiting in the TCP listeners' accept queues (gunicorn.backlog, a histogram).") \
    X(metrics_bind, std::string, "", "--metrics-bind", "ADDRESS", "metrics", any,                            \
      "Serve Prometheus metrics (/metrics) and a health check (/healthz) from the master at HOST:PORT or unix:PATH; never the app's port. Off when empty.") \
    X(control_socket, std::string, "", "--control-socket", "PATH", "control", any,                           \
      "A unix socket where `gcorn ctl` manages the running server (status, stats, workers, reload, stack). Off when empty.") \
    X(control_socket_mode, std::string, "0600", "--control-socket-mode", "INT", "control", umask,             \
      "Permissions of the control socket (octal); peers must also run as root or as the master's user.")   \
    X(control_socket_disable, bool, false, "--no-control-socket", "", "control", any,                        \
      "No control socket, even when control_socket is set.")                                                 \
    X(tmp_upload_dir, std::string, "", "", "DIR", "server mechanics", any,                                   \
      "Accepted for Gunicorn compatibility and unused: gcorn never spools request bodies (Gunicorn 26.1 never reads it either).") \
    X(spew, bool, false, "--spew", "", "debugging", any,                                                     \
      "Print every line of Python the workers execute (a trace function; very slow, for debugging).")
