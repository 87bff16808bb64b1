// whepsrc: WHEP client. Plays a WHEP endpoint: sometimes pads video_%u /
// audio_%u with decoded (or, when downstream asks, encoded) media.
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_WHIPWHEP_WHEP_SRC (gst_whipwhep_whep_src_get_type())
G_DECLARE_FINAL_TYPE(GstWhipwhepWhepSrc, gst_whipwhep_whep_src, GST, WHIPWHEP_WHEP_SRC, GstBin)

G_END_DECLS
