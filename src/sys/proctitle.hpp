// Process titles visible in ps ("gcorn: master [app]"), by rewriting the argv area as setproctitle does.
// POSIX/Linux only.
#pragma once
#include <string>

namespace gcorn::sys {

// Remembers the argv area and moves the environment out of its way. Call once, early, after argv was copied.
void init_proctitle(int argc, char** argv);
void set_proctitle(const std::string& title);

}  // namespace gcorn::sys
