// Which RTP codecs the project receives and sends, and how to pick them out of
// an SDP offer. Pure SDP/caps logic: no webrtcbin, no I/O. Used by the server
// elements to decide what to answer (whipserversrc: the publisher's codecs;
// whepserversink: the codec a viewer must accept).
#pragma once

#include <gst/gst.h>
#include <gst/sdp/sdp.h>

#include <optional>
#include <string>
#include <vector>

#include "gobj.h"

namespace whipwhep {

enum class MediaKind { Audio, Video, Other };

MediaKind media_kind(const GstSDPMedia *media);
const char *media_kind_name(MediaKind kind);  // "audio", "video", "other"

// The m-line's direction attribute (media level, else session level, else
// "sendrecv"): "sendonly", "recvonly", "sendrecv" or "inactive".
std::string media_direction(const GstSDPMessage *msg, const GstSDPMedia *media);

// One payload type of an offer that we can handle.
struct CodecChoice {
  std::string encoding;  // upper case: "H264", "VP8", "VP9", "OPUS"
  int pt = -1;           // the offerer's payload type
  int rtx_pt = -1;       // its RTX payload type (apt=pt), -1 if none offered
  // application/x-rtp caps of that payload type, as webrtcbin reads it from
  // the offer (fmtp and rtcp-fb fields included): use as codec-preferences.
  gobj::Ref<GstCaps> rtp_caps;
};

// Whether one payload type (caps from gst_sdp_media_get_caps_from_media) is
// something we can depayload and parse: H.264 packetization-mode=1 with a
// constrained baseline / baseline / main / high profile, VP8, VP9 profile 0,
// Opus 48 kHz.
bool rtp_codec_supported(const GstStructure *s);

// The first supported payload type of the m-line, in the offerer's order of
// preference; if `only_encoding` is not empty, only that codec is taken.
std::optional<CodecChoice> pick_codec(const GstSDPMedia *media,
                                      const std::string &only_encoding = {});

// Names of the codecs an m-line offers (for error messages): "AV1, H265".
std::string offered_codec_names(const GstSDPMedia *media);

// How a received stream of `encoding` is turned into encoded, parsed media.
struct DepayChain {
  const char *depayloader;  // "rtpvp8depay"
  const char *parser;       // "h264parse" or nullptr
  const char *output_caps;  // fixed output caps ("video/x-h264,stream-format=...")
};
std::optional<DepayChain> depay_chain_for(const std::string &encoding);

}  // namespace whipwhep
