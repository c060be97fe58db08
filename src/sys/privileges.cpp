#include "sys/privileges.hpp"

#include <cstdlib>
#include <cerrno>
#include <grp.h>
#include <pwd.h>
#include <stdexcept>
#include <unistd.h>

#include "sys/fd.hpp"

namespace gcorn::sys {
namespace {
bool numeric(const std::string& s) { return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos; }
}  // namespace

identity resolve_identity(const std::string& user, const std::string& group, bool initgroups) {
    identity id;
    if (!user.empty()) {
        const passwd* pw = numeric(user) ? ::getpwuid(uid_t(std::stoul(user))) : ::getpwnam(user.c_str());
        if (!pw && !numeric(user)) throw unknown_identity("no such user '" + user + "'");
        id.uid = pw ? pw->pw_uid : uid_t(std::stoul(user));
        if (pw) {
            if (initgroups) id.user_name = pw->pw_name;
            id.gid = pw->pw_gid;  // the user's primary group unless --group says otherwise
        }
    }
    if (!group.empty()) {
        const struct group* gr = numeric(group) ? ::getgrgid(gid_t(std::stoul(group))) : ::getgrnam(group.c_str());
        if (!gr && !numeric(group)) throw unknown_identity("no such group '" + group + "'");
        id.gid = gr ? gr->gr_gid : gid_t(std::stoul(group));
    }
    return id;
}

void drop_privileges(const identity& id) {
    if (id.gid && ::getegid() != *id.gid) {
        if (::setgid(*id.gid) != 0) throw_errno("setgid");
    }
    if (id.uid && ::geteuid() != *id.uid) {
        if (!id.user_name.empty()) {
            if (::initgroups(id.user_name.c_str(), id.gid.value_or(::getgid())) != 0) throw_errno("initgroups");
        } else if (::setgroups(0, nullptr) != 0 && errno != EPERM) {
            throw_errno("setgroups");  // drop root's supplementary groups
        }
        if (::setuid(*id.uid) != 0) throw_errno("setuid");
    }
}

}  // namespace gcorn::sys
