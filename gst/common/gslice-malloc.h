// Process set-up for programs that serve many viewers (whipwhep-server, the
// bench relay): make GLib's g_slice allocate with malloc.
#pragma once

namespace whipwhep {

// GLib before 2.76 serves g_slice_alloc (every GstEvent, GstCaps, pad,
// element instance, queue item ...) from per-thread magazines that keep freed
// chunks for their thread. webrtcbin runs five threads per viewer, so those
// caches grow with the viewer count: with G_SLICE=always-malloc the relay
// measured 0.52 instead of 0.70 MB RSS per viewer, at the same CPU (bench/
// RESULTS.md). GLib reads G_SLICE once, in a library constructor that runs
// before main(), so the setting takes a re-exec: when G_SLICE is unset and
// GLib is older than 2.76 (2.76 made g_slice plain malloc), set it and
// execv("/proc/self/exe", argv) - same pid, same arguments. Returns when it
// did not re-exec: G_SLICE already set (the operator's choice stands), newer
// GLib, or exec failed (then the process runs on, only with more memory).
// Call first thing in main(), before any thread exists. A program run under
// valgrind should set G_SLICE itself (the re-exec would leave valgrind).
void reexec_with_gslice_on_malloc(char **argv);

}  // namespace whipwhep
