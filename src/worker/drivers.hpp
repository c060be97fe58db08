// The drivers of the worker classes (DESIGN §2): sync accepts and serves one connection at a time; the reactor
// driver serves gthread (connections dispatched to pool threads) and async (to pooled greenlets on the hub).
// Each runs the worker base's run() and returns the worker's exit code.
#pragma once
#include "sys/contract.hpp"
#include "worker/transport.hpp"
#include "wsgi/app.hpp"

namespace gcorn::worker {

int run_sync(const sys::worker_args& args, const wsgi::application& app, const transport& t);
int run_gthread(const sys::worker_args& args, const wsgi::application& app, const transport& t);
int run_async(const sys::worker_args& args, const wsgi::application& app, const transport& t);

}  // namespace gcorn::worker
