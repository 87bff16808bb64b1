// Pure planning of a WHEP viewer's answer from its offer: which offered
// m-line gets which input stream, at which payload type (the viewer's own
// number), with which codec-preferences caps — or the HTTP status and reason
// why the offer cannot be served. No GObject state, no I/O: table-testable.
#pragma once

#include <gst/gst.h>
#include <gst/sdp/sdp.h>

#include <string>
#include <vector>

#include "gobj.h"
#include "sdp-codecs.h"

namespace whipwhep {

// MediaKind comes from sdp-codecs.h (one definition for the whole plugin).
const char *kind_name(MediaKind kind);

struct StreamInfo {
  MediaKind kind;
  gobj::Ref<GstCaps> caps;  // the stream's RTP caps (encoding-name, clock-rate...)
};

struct PlannedLeg {
  guint mline = 0;
  size_t stream = 0;  // index into the streams given to plan_viewer
  int pt = -1;        // the viewer's payload type for the stream's codec
  gobj::Ref<GstCaps> codec_preferences;  // for the transceiver, before create-answer
};

struct ViewerPlan {
  guint status = 0;  // 0: servable; else the HTTP status (400/422)
  std::string reason;
  std::vector<PlannedLeg> legs;
};

ViewerPlan plan_viewer(const GstSDPMessage *offer, const std::vector<StreamInfo> &streams);

}  // namespace whipwhep
