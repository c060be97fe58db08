// greenlet's C API, wrapped. This is the ONLY file that calls PyGreenlet_* (its API table is per
// translation unit: DESIGN §3.1 (7)). PRECONDITION for every function: the GIL is held.
#pragma once
#include "py/object.hpp"

namespace gcorn::py {

// Imports greenlet's C API; call once after the interpreter starts. Throws python_error.
void greenlet_import();

object greenlet_current();
// A new, not yet started greenlet running `run()`; `parent` is passed explicitly (DESIGN §3.1 (6)).
object greenlet_new(const object& run, const object& parent);
// Switches into `g`. Returns what is switched back, or null if an exception was raised into the caller
// (e.g. GreenletExit): that exception is then in `*error`.
object greenlet_switch(const object& g, python_error* error);
// Raises GreenletExit inside `g` (switching into it); returns like greenlet_switch.
object greenlet_kill(const object& g, python_error* error);
// Raises the exception instance `exception` inside `g` (switching into it); returns like greenlet_switch.
object greenlet_throw(const object& g, const object& exception, python_error* error);
bool greenlet_started(const object& g);
bool greenlet_dead(const object& g);  // started and no longer active
bool is_greenlet_exit(const python_error& e);

}  // namespace gcorn::py
