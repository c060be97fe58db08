// Validators named by the settings table: each throws std::invalid_argument with a reason.
// Pure value checks; they never touch the file system except `directory` and `readable_file`.
#pragma once
#include <string>
#include <vector>

namespace gcorn::config::check {

template <class T> void any(const T&) {}
void positive(int v);
void non_negative(int v);
void non_negative(double v);
void bind_addresses(const std::vector<std::string>& v);
void worker_class(const std::string& v);
void limit_line(int v);
void limit_fields(int v);
void directory(const std::string& v);
void virtualenv(const std::string& v);                // made from the Python gcorn embeds (its pyvenv.cfg says)
void key_value(const std::vector<std::string>& v);
void hook_specs(const std::vector<std::string>& v);
void umask(const std::string& v);
void ip_networks(const std::vector<std::string>& v);  // "*", addresses and CIDR networks
void readable_file(const std::string& v);             // empty, or a file that can be opened
void readable_paste(const std::string& v);            // empty, or FILE[#name] with FILE readable
void cert_reqs(int v);                                // 0, 1 or 2 (Python's ssl.CERT_*)
void ssl_version(const std::string& v);
void access_format(const std::string& v);
void log_level(const std::string& v);
void statsd_address(const std::string& v);
void proxy_protocol(const std::string& v);
void reload_engine(const std::string& v);
void syslog_address(const std::string& v);        // udp://, tcp:// or unix:// as Gunicorn's parse_syslog_address
void syslog_facility(const std::string& v);       // a name from Gunicorn's SYSLOG_FACILITIES         // auto, poll or inotify
void header_map(const std::string& v);                // drop, refuse or dangerous            // off, v1, v2, auto (true/false: auto/off, older configs)            // empty, HOST:PORT, unix://PATH or unix:PATH

// "0o22", "022", "18" -> 18; throws std::invalid_argument.
int parse_umask(const std::string& v);

}  // namespace gcorn::config::check
