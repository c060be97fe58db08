// `gcorn ctl`: the client of the master's control socket (endpoints.hpp). Sends one command line, prints the
// reply; exit status 1 if the master answered "error: ...", 2 if it could not be reached.
#pragma once
#include <string>
#include <vector>

namespace gcorn::master {

int ctl_main(const std::string& socket_path, const std::vector<std::string>& words);

}  // namespace gcorn::master
