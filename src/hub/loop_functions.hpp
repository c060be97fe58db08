// event_loop as `_gcorn.loop_*` functions for gcorn.gevent.loop, each taking the loop's handle (an int) first.
#pragma once

namespace gcorn::hub {

// Adds loop_new, loop_destroy, loop_io_start/stop, loop_timer_start/stop, loop_async_new/send/close,
// loop_signal_start/stop, loop_poll, loop_now, loop_reinit, loop_on_worker, hub_finish to `_gcorn`. PRECONDITION: GIL held.
void install_loop_functions();

}  // namespace gcorn::hub
