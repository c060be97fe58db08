#include "sys/systemd.hpp"

#include <cstdlib>

#include <systemd/sd-daemon.h>

namespace gcorn::sys::systemd {

bool supervised() { return std::getenv("NOTIFY_SOCKET") != nullptr; }

void notify(const std::string& state) {
    if (supervised()) ::sd_notify(0, state.c_str());
}

void forget() { ::unsetenv("NOTIFY_SOCKET"); }

}  // namespace gcorn::sys::systemd
