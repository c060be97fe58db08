// User and group switching for workers (--user/--group), done after the master has bound its sockets so
// privileged ports work. POSIX only.
#pragma once
#include <stdexcept>
#include <optional>
#include <string>
#include <sys/types.h>

namespace gcorn::sys {

struct identity {
    std::optional<uid_t> uid;
    std::optional<gid_t> gid;
    std::string user_name;  // set for --initgroups: the user's supplementary groups are joined
};

// A user or group that does not exist: a configuration error (exit code 2), not a failure of the system.
struct unknown_identity : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Resolves names or numeric ids; throws unknown_identity naming the unknown user or group.
identity resolve_identity(const std::string& user, const std::string& group, bool initgroups = false);

// setgid/initgroups/setuid to `id` (group first, while still allowed). Throws std::system_error.
void drop_privileges(const identity& id);

}  // namespace gcorn::sys
