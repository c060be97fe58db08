// The sync and gthread workers' way of waiting for a socket (socket_stream's and tls_stream's Waiter):
// poll(2) with the GIL released, so other Python threads run meanwhile (DESIGN §2).
#pragma once
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <poll.h>

#include "http/byte_stream.hpp"
#include "hub/edge_socket.hpp"
#include "py/gil.hpp"
#include "sys/scoreboard.hpp"

namespace gcorn::worker {

// PRECONDITION: the calling thread holds the GIL.
struct poll_waiter {
    // The sync worker's scoreboard slot: waiting on a slow client is not a hang, so the wait beats the heartbeat
    // (the client's own deadline bounds it); null where a reactor beats instead (gthread).
    sys::worker_slot* slot = nullptr;
    std::chrono::milliseconds beat_every{1000};
    // gthread: the connection's reactor registration, told what each read saw (so its next idle wait need not
    // re-arm); null for sync.
    hub::edge_socket* socket = nullptr;

    bool wait(int fd, bool writable, http::deadline until) {
        for (;;) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - http::clock::now()).count();
            if (left <= 0) return false;
            if (slot) slot->beat();
            pollfd p{fd, short(writable ? POLLOUT : POLLIN), 0};
            int rc;
            {
                py::gil_release unlocked;
                rc = ::poll(&p, 1, int(std::min<long long>(left, beat_every.count())));
            }
            if (rc > 0) return true;
            if (rc < 0 && errno != EINTR) throw http::stream_error(http::stream_error::kind::closed, "poll failed");
        }
    }
    void note_read(bool drained) {
        if (socket) socket->note_read(drained);
    }
    void yield() {}
};

}  // namespace gcorn::worker
