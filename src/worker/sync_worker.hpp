// The sync worker class (Gunicorn's default): one request at a time per process, accepting from the
// shared listeners and closing every connection after its response.
#pragma once
#include "sys/worker_args.hpp"
#include "wsgi/app.hpp"

namespace gcorn::worker {

int run_sync(const sys::worker_args& args, const wsgi::application& app);

// Trust and addresses for a connection accepted on `l` (forwarded_allow_ips, SERVER_NAME/PORT).
wsgi::connection_info describe_connection(int fd, const sys::listener& l, const config::settings& s);

}  // namespace gcorn::worker
