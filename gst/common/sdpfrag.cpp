#include "sdpfrag.h"

#include "gobj.h"

namespace whipwhep {

SdpFrag parse_sdpfrag(const std::string &body) {
  SdpFrag f;
  gobj::Unique<gchar *> lines(g_strsplit(body.c_str(), "\n", -1));
  gint mline = -1;
  for (gchar **l = lines.get(); l && *l; l++) {
    std::string line = g_strstrip(*l);
    if (line.rfind("m=", 0) == 0) mline++;
    else if (line.rfind("a=ice-ufrag:", 0) == 0) f.ice_ufrag = line.substr(12);
    else if (line.rfind("a=ice-pwd:", 0) == 0) f.ice_pwd = line.substr(10);
    else if (line.rfind("a=candidate:", 0) == 0)
      f.candidates.emplace_back(mline < 0 ? 0u : guint(mline), line.substr(2));
    else if (line == "a=end-of-candidates") f.end_of_candidates = true;
  }
  return f;
}

std::string offer_ice_ufrag(const GstSDPMessage *offer) {
  if (const gchar *u = gst_sdp_message_get_attribute_val(offer, "ice-ufrag")) return u;
  if (gst_sdp_message_medias_len(offer) > 0)
    if (const gchar *u =
            gst_sdp_media_get_attribute_val(gst_sdp_message_get_media(offer, 0), "ice-ufrag"))
      return u;
  return {};
}

}  // namespace whipwhep
