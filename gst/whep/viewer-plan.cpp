#include "viewer-plan.h"

#include <cstdlib>

namespace whipwhep {

const char *kind_name(MediaKind kind) { return kind == MediaKind::Video ? "video" : "audio"; }

namespace {

std::string direction_of(const GstSDPMedia *media) {
  for (const char *d : {"sendonly", "recvonly", "sendrecv", "inactive"})
    if (gst_sdp_media_get_attribute_val(media, d)) return d;
  return "sendrecv";  // RFC 4566 default
}

bool same_name(const gchar *a, const gchar *b) { return a && b && g_ascii_strcasecmp(a, b) == 0; }

void copy_field(GstStructure *to, const GstStructure *from, const char *field) {
  if (const GValue *v = gst_structure_get_value(from, field)) gst_structure_set_value(to, field, v);
}

}  // namespace

ViewerPlan plan_viewer(const GstSDPMessage *offer, const std::vector<StreamInfo> &streams) {
  ViewerPlan plan;
  std::vector<bool> used(streams.size(), false);
  const guint n = gst_sdp_message_medias_len(offer);
  for (guint i = 0; i < n; i++) {
    const GstSDPMedia *media = gst_sdp_message_get_media(offer, i);
    const std::string kind = gobj::str_or(gst_sdp_media_get_media(media));
    // Port 0 rejects an m-line, unless it is bundle-only (max-bundle offers).
    if ((gst_sdp_media_get_port(media) == 0 && !gst_sdp_media_get_attribute_val(media, "bundle-only")) ||
        (kind != "video" && kind != "audio"))
      continue;
    const std::string dir = direction_of(media);
    if (dir == "inactive") continue;
    if (dir != "recvonly") {
      plan.status = 422;
      plan.reason = "the offer's " + kind + " section (m-line " + std::to_string(i) + ") is " +
                    dir + ": a WHEP viewer's offer must be recvonly";
      return plan;
    }
    const MediaKind mk = kind == "video" ? MediaKind::Video : MediaKind::Audio;
    size_t s = 0;
    while (s < streams.size() && (used[s] || streams[s].kind != mk || !streams[s].caps)) s++;
    if (s == streams.size()) continue;  // nothing to send there: answered inactive
    const GstStructure *stream = gst_caps_get_structure(streams[s].caps.get(), 0);
    const gchar *enc = gst_structure_get_string(stream, "encoding-name");

    std::string offered;
    int pt = -1;
    gobj::Ref<GstCaps> chosen;
    for (guint f = 0; f < gst_sdp_media_formats_len(media); f++) {
      const int fpt = atoi(gst_sdp_media_get_format(media, f));
      gobj::Ref<GstCaps> c = gobj::adopt(gst_sdp_media_get_caps_from_media(media, fpt));
      if (!c || gst_caps_is_empty(c.get())) continue;
      const GstStructure *cs = gst_caps_get_structure(c.get(), 0);
      const gchar *name = gst_structure_get_string(cs, "encoding-name");
      if (!name || same_name(name, "RTX") || same_name(name, "RED") || same_name(name, "ULPFEC"))
        continue;
      if (offered.find(name) == std::string::npos) offered += std::string(offered.empty() ? "" : ", ") + name;
      if (!same_name(name, enc)) continue;
      // rtph264pay sends FU-A fragments: packetization-mode 1 only.
      if (same_name(enc, "H264") && !same_name(gst_structure_get_string(cs, "packetization-mode"), "1"))
        continue;
      pt = fpt;
      chosen = c;
      break;
    }
    if (pt < 0) {
      plan.status = 422;
      plan.reason = std::string("the viewer cannot receive this stream's ") + kind + " codec " +
                    (enc ? enc : "?") + " (its offer lists: " + (offered.empty() ? "nothing usable" : offered) + ")";
      return plan;
    }
    used[s] = true;
    const GstStructure *cs = gst_caps_get_structure(chosen.get(), 0);
    gint clock = 0;
    if (!gst_structure_get_int(cs, "clock-rate", &clock)) gst_structure_get_int(stream, "clock-rate", &clock);
    GstStructure *pref = gst_structure_new("application/x-rtp", "media", G_TYPE_STRING, kind.c_str(),
                                           "encoding-name", G_TYPE_STRING, enc, "payload", G_TYPE_INT, pt,
                                           "clock-rate", G_TYPE_INT, clock, nullptr);
    for (const char *f : {"encoding-params", "packetization-mode", "profile-level-id",
                          "level-asymmetry-allowed", "profile-id", "rtcp-fb-nack", "rtcp-fb-nack-pli",
                          "rtcp-fb-ccm-fir"})
      copy_field(pref, cs, f);
    PlannedLeg leg;
    leg.mline = i;
    leg.stream = s;
    leg.pt = pt;
    leg.codec_preferences = gobj::adopt(gst_caps_new_full(pref, nullptr));
    plan.legs.push_back(std::move(leg));
  }
  if (plan.legs.empty()) {
    plan.status = 422;
    plan.reason = "the offer has no recvonly audio or video section this stream can serve";
  }
  return plan;
}

}  // namespace whipwhep
