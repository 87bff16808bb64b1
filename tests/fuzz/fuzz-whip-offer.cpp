// libFuzzer target: a WHIP publisher's offer, through exactly what
// whipserversrc does with a POST body before webrtcbin sees it (parse_sdp,
// plan_publish_offer with and without a live stream to match, the ICE ufrag
// lookup) and the trickle PATCH body parser (parse_sdpfrag).
#include <gst/gst.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/sdpfrag.h"
#include "common/webrtc-negotiation.h"
#include "whip/publish-offer.h"

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  gst_init(nullptr, nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string body(reinterpret_cast<const char *>(data), size);
  std::string why;
  gobj::Unique<GstSDPMessage> offer(whipwhep::parse_sdp(body, &why));
  if (offer) {
    std::vector<whipwhep::MlinePlan> plan;
    const std::map<std::string, std::string> none;
    whipwhep::HttpResponse r = whipwhep::plan_publish_offer(offer.get(), none, &plan);
    if (r.status == 0 && plan.size() != gst_sdp_message_medias_len(offer.get())) __builtin_trap();
    // A re-publish must keep the codecs already flowing out of the element.
    const std::map<std::string, std::string> live = {{"video_0", "VP8"}, {"audio_0", "OPUS"}};
    plan.clear();
    whipwhep::plan_publish_offer(offer.get(), live, &plan);
    (void)whipwhep::offer_ice_ufrag(offer.get());
  }
  (void)whipwhep::parse_sdpfrag(body);
  return 0;
}
