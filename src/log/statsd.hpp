// Gunicorn's statsd instrumentation (statsd_host, statsd_prefix, dogstatsd_tags), with Gunicorn's metric names and
// types: per request gunicorn.request.duration (ms), gunicorn.requests and gunicorn.request.status.CODE (counters);
// gunicorn.log.{critical,error,warning} per error-log line; gunicorn.workers (gauge) from the master. One UDP (or
// unix datagram) packet per metric, as Gunicorn sends them; a lost packet is a lost sample, never an error.
#pragma once
#include <chrono>
#include <string>
#include <string_view>

#include "config/settings.hpp"

namespace gcorn::log::statsd {

// Opens the socket when statsd_host is set (workers inherit it). Throws std::runtime_error naming a bad address.
void setup(const config::settings& s);
bool enabled() noexcept;

void request(std::chrono::steady_clock::duration took, int status) noexcept;
void increment(std::string_view name) noexcept;
void gauge(std::string_view name, long long value) noexcept;
void histogram(std::string_view name, long long value) noexcept;

}  // namespace gcorn::log::statsd
