// User and group switching for workers (--user/--group), done after the master has bound its sockets so
// privileged ports work. POSIX only.
#pragma once
#include <optional>
#include <string>
#include <sys/types.h>

namespace gcorn::sys {

struct identity {
    std::optional<uid_t> uid;
    std::optional<gid_t> gid;
    std::string user_name;  // set for --initgroups: the user's supplementary groups are joined
};

// Resolves names or numeric ids; throws std::runtime_error naming the unknown user or group.
identity resolve_identity(const std::string& user, const std::string& group, bool initgroups = false);

// setgid/initgroups/setuid to `id` (group first, while still allowed). Throws std::system_error.
void drop_privileges(const identity& id);

}  // namespace gcorn::sys
