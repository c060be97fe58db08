// The gthread worker class (DESIGN §2): `threads` pool threads per process run the connection loop, every
// wait a poll(2) with the GIL released; idle keep-alive sockets wait on the worker's reactor, not in a thread.
#pragma once
#include "sys/worker_args.hpp"
#include "wsgi/app.hpp"

namespace gcorn::worker {

class transport;

// PRECONDITION: the calling (main) thread holds the GIL; it holds it again when this returns.
int run_gthread(const sys::worker_args& args, const wsgi::application& app, const transport& t);

}  // namespace gcorn::worker
