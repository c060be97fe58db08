// The async worker class (DESIGN §3): every connection a greenlet on the hub, up to worker_connections.
#pragma once
#include "sys/worker_args.hpp"
#include "wsgi/app.hpp"

namespace gcorn::worker {

class transport;

int run_async(const sys::worker_args& args, const wsgi::application& app, const transport& t);

}  // namespace gcorn::worker
