// whepserversink's inputs: each sink pad is payloaded ONCE, whatever the
// number of viewers, by a payloader chosen from the caps that arrive, and
// handed to a Fanout (fanout.h).
#pragma once

#include <gst/gst.h>

#include <memory>
#include <string>

#include "fanout.h"
#include "gobj.h"
#include "viewer-plan.h"

namespace whipwhep {

// An input pad of the element, payloaded once and fanned out to viewers.
struct Input {
  MediaKind kind;
  gobj::Ref<GstPad> ghost;
  gobj::Ref<GstElement> payloader;
  std::string payloader_caps_name;  // media type the payloader was made for
  std::unique_ptr<Fanout> fanout;
};

// A configured payloader for `media_type` (mtu 1200; H.264 a bin of
// h264parse, for SPS/PPS on every IDR access unit, and rtph264pay with
// zero-latency aggregation; VP8/VP9 15-bit picture ids), or an
// identity for application/x-rtp. nullptr if unknown or not installed;
// *factory names what was tried.
gobj::Ref<GstElement> make_payloader(const std::string &media_type, const char **factory);

// Until a payloader exists the ghost pad has no target: this probe answers
// caps and accept-caps queries from the pad template so upstream can
// negotiate.
void answer_caps_queries_from_template(GstPad *ghost);

}  // namespace whipwhep
