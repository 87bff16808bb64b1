// RFC 8840 trickle-ICE SDP fragments (application/trickle-ice-sdpfrag), the
// body of a WHIP/WHEP PATCH.
#pragma once

#include <gst/sdp/sdp.h>

#include <glib.h>

#include <string>
#include <utility>
#include <vector>

namespace whipwhep {

struct SdpFrag {
  std::string ice_ufrag;  // empty if the fragment has none
  std::string ice_pwd;
  // (m-line index within the fragment, "candidate:..." without "a=")
  std::vector<std::pair<guint, std::string>> candidates;
  bool end_of_candidates = false;
};

SdpFrag parse_sdpfrag(const std::string &body);

// An offer's ICE ufrag (session level, else the first m-line's): a PATCH
// fragment with another ufrag is an ICE restart, with this one trickle.
std::string offer_ice_ufrag(const GstSDPMessage *offer);

}  // namespace whipwhep
