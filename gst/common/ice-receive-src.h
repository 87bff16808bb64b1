// A source element for one libnice component that has no thread of its own.
//
// webrtcbin (1.22) receives each transport through a `nicesrc`, a GstBaseSrc
// whose streaming thread runs a main context of its own where libnice reads
// the component's sockets. On a shared agent (shared-ice.h) that is still a
// thread per viewer, for what is on the server side a few packets a second
// (the viewer's STUN consent checks, its SRTCP reports and feedback). This
// element attaches the component's receive callback to the agent's own main
// context instead, and pushes each datagram from there. The agent's thread
// never blocks on it: the first element that can wait (the queue in
// webrtcbin's transport receive bin, ahead of its receive-state block) is
// downstream of everything that runs here. That queue turns non-leaky
// (5 MB) once webrtcbin lets reception pass, so should its thread ever stall
// this element drops datagrams once 256 KiB wait in it, rather than block the
// agent's thread and every other viewer on the agent; its read-only
// "received" and "dropped" properties count datagrams pushed and dropped.
#pragma once

#include <gst/gst.h>
#include <nice/agent.h>

namespace whipwhep {

// A floating element (as gst_element_factory_make) for `component` of
// `stream_id` on `agent`. It receives between READY->PAUSED and
// PAUSED->READY; its "src" pad carries ANY caps.
GstElement *ice_receive_src_new(NiceAgent *agent, guint stream_id, guint component);

// Returns once the thread that runs `context` has finished whatever it was
// dispatching (at most 2 s; at once on that thread itself): after
// nice_agent_attach_recv(..., NULL) or g_source_destroy(), a callback read
// before may still be running there.
void wait_for_main_context(GMainContext *context);

}  // namespace whipwhep
