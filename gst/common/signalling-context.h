// One process-wide GMainContext, run by its own thread, for HTTP clients
// (SoupSession is bound to the context it is used on). Like souphttpsrc's
// and gst-plugins-rs' shared runtime: elements never spin their own loops.
#pragma once

#include <glib.h>

#include <functional>

namespace whipwhep {

// The shared context; its thread is started on first use and lives for the
// rest of the process.
GMainContext *signalling_context();

// Run `fn` on the signalling thread (at once if already on it).
void run_on_signalling_thread(std::function<void()> fn);

// Run `fn` on the signalling thread and wait for it to return, at most
// `timeout_ms`. Returns false on timeout (fn still runs later). Must not be
// called from the signalling thread itself with a function that waits.
bool run_on_signalling_thread_sync(std::function<void()> fn, guint timeout_ms);

}  // namespace whipwhep
