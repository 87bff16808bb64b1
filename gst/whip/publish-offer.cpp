#include "publish-offer.h"

#include <cstdlib>

namespace whipwhep {

HttpResponse plan_publish_offer(const GstSDPMessage *offer,
                                const std::map<std::string, std::string> &live_encodings,
                                std::vector<MlinePlan> *plan) {
  std::map<MediaKind, int> seen;
  std::string declined;
  bool any = false;
  for (guint i = 0; i < gst_sdp_message_medias_len(offer); i++) {
    const GstSDPMedia *m = gst_sdp_message_get_media(offer, i);
    MlinePlan p;
    const MediaKind kind = media_kind(m);
    // Port 0 is a rejected m-line unless it is bundle-only (RFC 8843: how
    // max-bundle offerers such as webrtcbin send every m-line but the first).
    const bool rejected =
        gst_sdp_media_get_port(m) == 0 && !gst_sdp_media_get_attribute_val(m, "bundle-only");
    if (kind == MediaKind::Other || rejected) {
      plan->push_back(p);
      continue;
    }
    const std::string dir = media_direction(offer, m);
    if (dir == "recvonly")
      return HttpResponse::text(422, std::string("WHIP offers must be sendonly; the ") +
                                         media_kind_name(kind) + " m-line " +
                                         std::to_string(i) + " is recvonly");
    p.output = std::string(media_kind_name(kind)) + "_" + std::to_string(seen[kind]++);
    if (gst_sdp_media_formats_len(m) > 0) {
      GstCaps *c = gst_sdp_media_get_caps_from_media(
          m, atoi(gst_sdp_media_get_format(m, 0)));
      if (c) {
        c = gst_caps_make_writable(c);
        gst_structure_set_name(gst_caps_get_structure(c, 0), "application/x-rtp");
        p.declined_caps = gobj::adopt(c);
      }
    }
    if (dir == "inactive") {
      plan->push_back(p);
      continue;
    }
    auto out = live_encodings.find(p.output);
    const std::string required = out != live_encodings.end() ? out->second : "";
    auto choice = pick_codec(m, required);
    if (!choice) {
      if (!required.empty() && pick_codec(m))
        return HttpResponse::text(422, "codec change not supported on a live input: " +
                                           p.output + " carries " + required +
                                           ", the offer has " + offered_codec_names(m));
      declined += std::string(declined.empty() ? "" : "; ") + media_kind_name(kind) + ": " +
                  offered_codec_names(m);
    } else {
      p.accepted = true;
      p.codec = *choice;
      any = true;
    }
    plan->push_back(p);
  }
  if (!any)
    return HttpResponse::text(422, "no acceptable codec (offered " +
                                       (declined.empty() ? std::string("no media") : declined) +
                                       "; accepted: H264 packetization-mode=1, VP8, VP9, Opus)");
  HttpResponse ok;
  ok.status = 0;
  return ok;
}


}  // namespace whipwhep
