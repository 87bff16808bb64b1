// What whipserversrc answers to a WHIP publisher's offer: per m-line, the
// codec to receive (the publisher's payload type) or a decline, and the
// 422 reasons. Pure SDP logic, no webrtcbin (testable on its own).
#pragma once

#include "sdpfrag.h"

#include <gst/sdp/sdp.h>

#include <map>
#include <string>
#include <vector>

#include "gobj.h"
#include "http-types.h"
#include "sdp-codecs.h"

namespace whipwhep {

struct MlinePlan {
  bool accepted = false;
  std::string output;  // the element's src pad for it: "video_0"; empty = not media
  CodecChoice codec;   // accepted: the codec to receive
  gobj::Ref<GstCaps> declined_caps;  // !accepted: one offered format, answered inactive
};

// `live_encodings`: output pad name -> encoding it already carries (a later
// publisher must keep it). Returns status 0 and fills `plan` (one entry per
// m-line), or the 422 response explaining why the offer cannot be used.
HttpResponse plan_publish_offer(const GstSDPMessage *offer,
                                const std::map<std::string, std::string> &live_encodings,
                                std::vector<MlinePlan> *plan);

}  // namespace whipwhep
