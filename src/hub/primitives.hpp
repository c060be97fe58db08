// The hub's primitives as `_gcorn` functions for gcorn's Python side (gcorn.monkey, gcorn.green):
// sleep, wait_read, wait_write, spawn, run_in_threadpool, in_hub, and greenlet-to-greenlet waits (current_token,
// wait_wakeup, wakeup, throw_later, cancel_throw). Outside a hub greenlet the waits block the calling thread (with
// the GIL released) like the functions they replace.
#pragma once

namespace gcorn::hub {

class hub;

// Adds the primitives to the `_gcorn` module; they use whichever hub::current() exists when called, so they
// can be installed (and the stdlib patched) before the app is imported and the hub starts.
// PRECONDITION: GIL held. Throws py::python_error.
void install_primitives();

}  // namespace gcorn::hub
