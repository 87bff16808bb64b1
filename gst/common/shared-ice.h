// One libnice agent, and one thread, for many webrtcbins.
//
// webrtcbin (1.22) gives every instance its own GstWebRTCNice: a NiceAgent
// with two 64 KiB receive buffers, a GMainContext and a thread. A server
// answering hundreds of viewers with the same ICE settings pays that per
// viewer although libnice streams are independent of each other (own
// credentials, candidates, checks and sockets): only the agent's role and
// settings are common. shared_ice_new() returns a GstWebRTCICE for one
// webrtcbin (pass it as webrtcbin's construct-only "ice-agent") whose
// streams live on a pooled agent serving up to `sessions_per_agent`
// webrtcbins created with the same settings. The agent's ICE role is
// agent-wide: use it only for webrtcbins that answer (ICE-controlled), as
// every server-side session does.
#pragma once

#include "gobj.h"
#include "ice.h"

#include <gst/webrtc/ice.h>

namespace whipwhep {

// NiceAgent per this many sessions at most by default: enough to take the
// thread and the agent off the per-viewer bill, few enough that libnice's
// per-agent signal handlers (three per session, each emission visits all of
// them) and its agent lock stay cheap.
constexpr guint kDefaultIceSessionsPerAgent = 32;

gobj::Ref<GstWebRTCICE> shared_ice_new(const IceSettings &settings, guint sessions_per_agent,
                                       const char *name);

bool is_shared_ice(gpointer ice);

// The libnice stream of a webrtcbin's (first, max-bundle) transport, 0 if
// none yet: with a shared agent, stream ids are the agent's, not 1..n.
guint ice_stream_id_of(GstElement *webrtcbin);

}  // namespace whipwhep
