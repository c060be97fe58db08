#include "sys/proctitle.hpp"

#include <cstring>
#include <sys/prctl.h>
#include <unistd.h>

extern char** environ;

namespace gcorn::sys {
namespace {
char* area = nullptr;  // argv[0]'s bytes, extended over the contiguous argv and environment strings
size_t area_size = 0;
}  // namespace

void init_proctitle(int argc, char** argv) {
    if (argc < 1 || !argv[0]) return;
    char* end = argv[0] + std::strlen(argv[0]);
    for (int i = 1; i < argc; ++i)
        if (argv[i] == end + 1) end = argv[i] + std::strlen(argv[i]);
    // The environment usually follows argv: copy it to the heap so its bytes can hold a longer title.
    size_t n = 0;
    while (environ[n]) ++n;
    char** moved = new char*[n + 1];
    for (size_t i = 0; i < n; ++i) {
        if (environ[i] == end + 1) end = environ[i] + std::strlen(environ[i]);
        moved[i] = ::strdup(environ[i]);
    }
    moved[n] = nullptr;
    environ = moved;
    area = argv[0];
    area_size = size_t(end - area);
}

void set_proctitle(const std::string& title) {
    ::prctl(PR_SET_NAME, title.substr(0, 15).c_str(), 0, 0, 0);  // comm, for top and ps -o comm
    if (!area) return;
    size_t n = std::min(title.size(), area_size);
    std::memcpy(area, title.data(), n);
    std::memset(area + n, 0, area_size - n + 1);
}

}  // namespace gcorn::sys
