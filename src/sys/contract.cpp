#include "sys/contract.hpp"

#include <cstdlib>
#include <string_view>
#include <unistd.h>

namespace gcorn::sys {
namespace {

// The hand-over variables (the old master sets them in the child it execs).
constexpr const char* handover_fds_var = "GCORN_FD";
constexpr const char* old_master_var = "GCORN_PID";
// systemd socket activation (sd_listen_fds(3)): fds from 3 on, for the pid named.
constexpr int sd_listen_fds_start = 3;

std::vector<int> parse_fds(std::string_view list) {
    std::vector<int> fds;
    while (!list.empty()) {
        auto comma = list.find(',');
        fds.push_back(std::atoi(std::string(list.substr(0, comma)).c_str()));
        list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    }
    return fds;
}

std::vector<int> systemd_fds() {
    const char* n = std::getenv("LISTEN_FDS");
    const char* pid = std::getenv("LISTEN_PID");
    if (!n || !pid || std::atoi(pid) != ::getpid()) return {};
    std::vector<int> fds;
    for (int i = 0; i < std::atoi(n); ++i) fds.push_back(sd_listen_fds_start + i);
    ::unsetenv("LISTEN_FDS"), ::unsetenv("LISTEN_PID"), ::unsetenv("LISTEN_FDNAMES");
    return fds;
}

}  // namespace

void export_handover(const std::vector<listener>& listeners, pid_t old_master) {
    ::setenv(handover_fds_var, inheritable_fds(listeners).c_str(), 1);
    ::setenv(old_master_var, std::to_string(old_master).c_str(), 1);
}

std::optional<std::vector<listener>> inherited_listeners() {
    const char* list = std::getenv(handover_fds_var);
    bool handed_over = list != nullptr;
    auto fds = handed_over ? parse_fds(list) : systemd_fds();
    ::unsetenv(handover_fds_var);
    if (fds.empty()) return std::nullopt;
    std::vector<listener> out;
    for (int fd : fds) {
        out.push_back(adopt_listener(fd));
        if (handed_over && out.back().is_unix) out.back().unix_path = out.back().host;
    }
    return out;
}

pid_t old_master_pid() {
    const char* old = std::getenv(old_master_var);
    return old ? pid_t(std::atoi(old)) : 0;
}

void forget_old_master() { ::unsetenv(old_master_var); }

}  // namespace gcorn::sys
