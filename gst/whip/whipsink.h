// whipsink: WHIP client (RFC 9725). Publishes its request pads' media over
// WebRTC to a WHIP endpoint. See whipsink.cpp for behaviour and properties.
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_WHIPWHEP_WHIP_SINK (gst_whipwhep_whip_sink_get_type())
G_DECLARE_FINAL_TYPE(GstWhipwhepWhipSink, gst_whipwhep_whip_sink, GST, WHIPWHEP_WHIP_SINK, GstBin)

G_END_DECLS
