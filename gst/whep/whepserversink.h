// whepserversink: the WHEP server side. Encoded audio/video in on request
// pads, payloaded once and fanned out to every WHEP viewer (one sendonly
// webrtcbin per viewer). See the element documentation in whepserversink.cpp.
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_WHIPWHEP_WHEP_SERVER_SINK (gst_whipwhep_whep_server_sink_get_type())
G_DECLARE_FINAL_TYPE(GstWhipwhepWhepServerSink, gst_whipwhep_whep_server_sink, GST,
                     WHIPWHEP_WHEP_SERVER_SINK, GstBin)

G_END_DECLS
