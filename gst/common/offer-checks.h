// Structural checks on a WebRTC offer, before any webrtcbin sees it.
// webrtcbin 1.22 answers offers with duplicate mids, without ICE
// credentials or without a fingerprint, and creates transceivers for any
// number of m-lines; a server would then hold a session (and, for WHIP, the
// input's one publisher slot) for an offer that can never connect.
#pragma once

#include <gst/sdp/sdp.h>

#include <string>

namespace whipwhep {

// More m-lines than any WHIP/WHEP client sends (audio + video, plus a few
// declined ones); simulcast uses rids within one m-line.
inline constexpr guint kMaxOfferMlines = 16;

// 0 when the offer is usable as far as its structure goes; otherwise the
// HTTP status and *why: 400 for an offer WebRTC does not allow (duplicate
// mid, missing ice-ufrag/ice-pwd or fingerprint on a used m-line), 422 for
// one we choose not to serve (fingerprint hash other than SHA-1/SHA-2,
// more than kMaxOfferMlines m-lines).
guint check_offer(const GstSDPMessage *offer, std::string *why);

}  // namespace whipwhep
