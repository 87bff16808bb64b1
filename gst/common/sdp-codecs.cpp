#include "sdp-codecs.h"

#include <cstdlib>
#include <cstring>

namespace whipwhep {

MediaKind media_kind(const GstSDPMedia *media) {
  const gchar *m = gst_sdp_media_get_media(media);
  if (m && g_str_equal(m, "audio")) return MediaKind::Audio;
  if (m && g_str_equal(m, "video")) return MediaKind::Video;
  return MediaKind::Other;
}

const char *media_kind_name(MediaKind kind) {
  switch (kind) {
    case MediaKind::Audio: return "audio";
    case MediaKind::Video: return "video";
    default: return "other";
  }
}

static const char *direction_of(const GstSDPMedia *media) {
  static const char *const dirs[] = {"sendonly", "recvonly", "sendrecv", "inactive"};
  for (const char *d : dirs)
    if (gst_sdp_media_get_attribute_val(media, d)) return d;
  return nullptr;
}

std::string media_direction(const GstSDPMessage *msg, const GstSDPMedia *media) {
  // gst_sdp_media_get_attribute_val() returns "" (not NULL) for value-less
  // attributes, so presence is enough.
  if (const char *d = direction_of(media)) return d;
  static const char *const dirs[] = {"sendonly", "recvonly", "sendrecv", "inactive"};
  for (const char *d : dirs)
    if (gst_sdp_message_get_attribute_val(msg, d)) return d;
  return "sendrecv";
}

static std::string upper(const gchar *s) {
  if (!s) return {};
  gobj::Unique<gchar> u(g_ascii_strup(s, -1));
  return u.get();
}

static bool h264_profile_ok(const gchar *profile_level_id) {
  // No profile-level-id means 42000a (baseline, RFC 6184 default).
  if (!profile_level_id) return true;
  if (strlen(profile_level_id) != 6) return false;
  char idc[3] = {profile_level_id[0], profile_level_id[1], 0};
  const long profile_idc = strtol(idc, nullptr, 16);
  // Baseline/constrained baseline (0x42), main (0x4d), high (0x64): what
  // browsers and OBS send; h264parse and every common decoder take them.
  return profile_idc == 0x42 || profile_idc == 0x4d || profile_idc == 0x64;
}

bool rtp_codec_supported(const GstStructure *s) {
  const std::string enc = upper(gst_structure_get_string(s, "encoding-name"));
  gint clock_rate = 0;
  gst_structure_get_int(s, "clock-rate", &clock_rate);
  if (enc == "VP8") return clock_rate == 90000;
  if (enc == "VP9") {
    const gchar *profile = gst_structure_get_string(s, "profile-id");
    return clock_rate == 90000 && (!profile || g_str_equal(profile, "0"));
  }
  if (enc == "H264") {
    // packetization-mode=0 (single NAL) is rare in WebRTC and not what the
    // checklist asks for; take the interleaving-free mode 1 only.
    const gchar *mode = gst_structure_get_string(s, "packetization-mode");
    return clock_rate == 90000 && mode && g_str_equal(mode, "1") &&
           h264_profile_ok(gst_structure_get_string(s, "profile-level-id"));
  }
  if (enc == "OPUS") return clock_rate == 48000;
  return false;
}

static GstCaps *caps_for_pt(const GstSDPMedia *media, int pt) {
  GstCaps *caps = gst_sdp_media_get_caps_from_media(media, pt);
  if (!caps) return nullptr;
  caps = gst_caps_make_writable(caps);
  for (guint i = 0; i < gst_caps_get_size(caps); i++)
    gst_structure_set_name(gst_caps_get_structure(caps, i), "application/x-rtp");
  return caps;
}

std::optional<CodecChoice> pick_codec(const GstSDPMedia *media, const std::string &only_encoding) {
  const MediaKind kind = media_kind(media);
  if (kind == MediaKind::Other) return std::nullopt;
  const std::string only = upper(only_encoding.c_str());
  for (guint i = 0; i < gst_sdp_media_formats_len(media); i++) {
    const int pt = atoi(gst_sdp_media_get_format(media, i));
    gobj::Ref<GstCaps> caps = gobj::adopt(caps_for_pt(media, pt));
    if (!caps || gst_caps_is_empty(caps.get())) continue;
    const GstStructure *s = gst_caps_get_structure(caps.get(), 0);
    if (!rtp_codec_supported(s)) continue;
    const std::string enc = upper(gst_structure_get_string(s, "encoding-name"));
    if ((enc == "OPUS") != (kind == MediaKind::Audio)) continue;
    if (!only.empty() && enc != only) continue;
    CodecChoice c;
    c.encoding = enc;
    c.pt = pt;
    c.rtp_caps = caps;
    // Its retransmission stream, if offered: "a=fmtp:<rtx> apt=<pt>".
    for (guint j = 0; j < gst_sdp_media_formats_len(media); j++) {
      const int rpt = atoi(gst_sdp_media_get_format(media, j));
      gobj::Ref<GstCaps> rc = gobj::adopt(caps_for_pt(media, rpt));
      if (!rc || gst_caps_is_empty(rc.get())) continue;
      const GstStructure *rs = gst_caps_get_structure(rc.get(), 0);
      const gchar *apt = gst_structure_get_string(rs, "apt");
      if (upper(gst_structure_get_string(rs, "encoding-name")) == "RTX" && apt &&
          atoi(apt) == pt) {
        c.rtx_pt = rpt;
        break;
      }
    }
    return c;
  }
  return std::nullopt;
}

std::string offered_codec_names(const GstSDPMedia *media) {
  std::string out;
  for (guint i = 0; i < gst_sdp_media_formats_len(media); i++) {
    const int pt = atoi(gst_sdp_media_get_format(media, i));
    gobj::Ref<GstCaps> caps = gobj::adopt(caps_for_pt(media, pt));
    if (!caps || gst_caps_is_empty(caps.get())) continue;
    std::string enc = upper(gst_structure_get_string(gst_caps_get_structure(caps.get(), 0),
                                                     "encoding-name"));
    if (enc.empty() || enc == "RTX" || enc == "RED" || enc == "ULPFEC" || enc == "FLEXFEC-03")
      continue;
    if (out.find(enc) != std::string::npos) continue;
    if (!out.empty()) out += ", ";
    out += enc;
  }
  return out.empty() ? "none" : out;
}

std::optional<DepayChain> depay_chain_for(const std::string &encoding) {
  const std::string enc = upper(encoding.c_str());
  // h264parse converts whatever alignment the depayloader gives into whole
  // access units in byte-stream with SPS/PPS before every IDR
  // (config-interval=-1), so a consumer can start at any keyframe.
  if (enc == "H264")
    return DepayChain{"rtph264depay", "h264parse",
                      "video/x-h264,stream-format=byte-stream,alignment=au"};
  if (enc == "VP8") return DepayChain{"rtpvp8depay", nullptr, "video/x-vp8"};
  if (enc == "VP9") return DepayChain{"rtpvp9depay", "vp9parse", "video/x-vp9"};
  if (enc == "OPUS") return DepayChain{"rtpopusdepay", nullptr, "audio/x-opus"};
  return std::nullopt;
}

}  // namespace whipwhep
