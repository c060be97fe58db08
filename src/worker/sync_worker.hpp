// The sync worker class (Gunicorn's default): one request at a time per process, accepting from the
// shared listeners and closing every connection after its response.
#pragma once
#include "sys/worker_args.hpp"
#include "wsgi/app.hpp"

namespace gcorn::worker {

class transport;

int run_sync(const sys::worker_args& args, const wsgi::application& app, const transport& t);

}  // namespace gcorn::worker
