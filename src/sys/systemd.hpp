// systemd's readiness protocol (sd_notify(3)) for a master started by a Type=notify unit: READY=1 once a worker
// serves, RELOADING=1 / READY=1 around a HUP, STOPPING=1 at a stop, STATUS= lines for `systemctl status`.
// Nothing is sent when $NOTIFY_SOCKET is unset (not under systemd).
#pragma once
#include <string>

namespace gcorn::sys::systemd {

// True if a service manager listens ($NOTIFY_SOCKET): then the master must not daemonize.
bool supervised();
// Sends `state` ("READY=1\nSTATUS=..."); errors are ignored, as sd_notify's callers do.
void notify(const std::string& state);
// In a worker: only the master talks to systemd.
void forget();

}  // namespace gcorn::sys::systemd
