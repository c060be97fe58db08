// The worker's inspector (issue 12, `gcorn ctl stack PID`): a thread that waits on the worker's end of a socket
// pair the master holds the other end of. Asked, it takes the GIL (which a request asleep or waiting on I/O has
// released, and a busy one gives up within the switch interval) and answers with the Python stacks of every
// thread and greenlet, so the worker is inspected without being stopped.
//   request: one byte.  reply: a 4-byte big-endian length, then that much UTF-8 text.
#pragma once
#include <thread>

#include "sys/scoreboard.hpp"

namespace gcorn::worker {

class inspector {
public:
    // PRECONDITION: the interpreter is running. `fd` < 0: no inspector.
    inspector(int fd, const sys::worker_slot& slot);
    ~inspector();  // stops the thread (it may be waiting for the GIL: the destructor releases it if held)
    inspector(const inspector&) = delete;
    inspector& operator=(const inspector&) = delete;

private:
    int fd_;
    std::thread thread_;
};

}  // namespace gcorn::worker
