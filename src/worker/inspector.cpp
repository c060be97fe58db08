#include "worker/inspector.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstdint>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

#include "py/gil.hpp"
#include "py/object.hpp"

namespace gcorn::worker {
namespace {

bool write_all(int fd, const char* p, size_t n) {
    while (n > 0) {
        ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w, n -= size_t(w);
    }
    return true;
}

std::string stacks(const sys::worker_slot& slot) {
    py::gil_acquire gil;
    try {
        return py::str_of(py::import("gcorn._inspect").attr("dump")({py::str(slot.request_text())}));
    } catch (const py::python_error& e) {
        return "cannot format the stacks:\n" + e.traceback();
    }
}

void serve(int fd, const sys::worker_slot& slot) {
    for (char c;;) {
        ssize_t n = ::recv(fd, &c, 1, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;  // the master closed its end, or the worker is stopping
        std::string text = stacks(slot);
        uint32_t len = htonl(uint32_t(text.size()));
        if (!write_all(fd, reinterpret_cast<const char*>(&len), sizeof len) || !write_all(fd, text.data(), text.size()))
            return;
    }
}

}  // namespace

inspector::inspector(int fd, const sys::worker_slot& slot) : fd_(fd) {
    if (fd_ >= 0) thread_ = std::thread([fd, &slot] { serve(fd, slot); });
}

inspector::~inspector() {
    if (!thread_.joinable()) return;
    ::shutdown(fd_, SHUT_RDWR);  // ends its wait; an answer in progress fails its write
    py::join_without_gil(thread_);  // it may be waiting for the GIL to finish an answer
}

}  // namespace gcorn::worker
