// libFuzzer target: a WHEP viewer's offer, through what whepserversink does
// with a POST body before webrtcbin sees it (parse_sdp, plan_viewer against
// a VP8+Opus and an H.264 input), and the trickle PATCH parser.
#include <gst/gst.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/sdpfrag.h"
#include "common/webrtc-negotiation.h"
#include "whep/viewer-plan.h"

namespace {

std::vector<whipwhep::StreamInfo> *streams_vp8;
std::vector<whipwhep::StreamInfo> *streams_h264;

whipwhep::StreamInfo stream(whipwhep::MediaKind kind, const char *caps) {
  return {kind, gobj::adopt(gst_caps_from_string(caps))};
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  gst_init(nullptr, nullptr);
  using whipwhep::MediaKind;
  streams_vp8 = new std::vector<whipwhep::StreamInfo>{
      stream(MediaKind::Video,
             "application/x-rtp,media=video,encoding-name=VP8,clock-rate=90000,payload=96"),
      stream(MediaKind::Audio,
             "application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,payload=111,"
             "encoding-params=(string)2")};
  streams_h264 = new std::vector<whipwhep::StreamInfo>{
      stream(MediaKind::Video,
             "application/x-rtp,media=video,encoding-name=H264,clock-rate=90000,payload=102,"
             "packetization-mode=(string)1,profile-level-id=(string)42e01f")};
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string body(reinterpret_cast<const char *>(data), size);
  std::string why;
  gobj::Unique<GstSDPMessage> offer(whipwhep::parse_sdp(body, &why));
  if (offer) {
    for (auto *streams : {streams_vp8, streams_h264}) {
      whipwhep::ViewerPlan plan = whipwhep::plan_viewer(offer.get(), *streams);
      if (plan.status == 0) {
        for (const auto &leg : plan.legs)
          if (leg.stream >= streams->size() ||
              leg.mline >= gst_sdp_message_medias_len(offer.get()))
            __builtin_trap();
      } else if (plan.reason.empty()) {
        __builtin_trap();  // every refusal must say why
      }
    }
  }
  (void)whipwhep::parse_sdpfrag(body);
  return 0;
}
