// whipserversrc: the WHIP server side. One publisher at a time sends WebRTC
// media in; encoded, parsed streams come out on sometimes pads video_%u /
// audio_%u. See whipserversrc.cpp for the design.
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_WHIPWHEP_WHIP_SERVER_SRC (gst_whipwhep_whip_server_src_get_type())
G_DECLARE_FINAL_TYPE(GstWhipwhepWhipServerSrc, gst_whipwhep_whip_server_src, GST,
                     WHIPWHEP_WHIP_SERVER_SRC, GstBin)

G_END_DECLS
