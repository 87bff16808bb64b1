#include "offer-checks.h"

#include <set>

namespace whipwhep {

namespace {

// A media-level attribute, else the session-level one (RFC 8839/8122 allow
// both places).
const gchar *attribute(const GstSDPMessage *offer, const GstSDPMedia *media, const char *name) {
  const gchar *v = gst_sdp_media_get_attribute_val(media, name);
  return v ? v : gst_sdp_message_get_attribute_val(offer, name);
}

}  // namespace

guint check_offer(const GstSDPMessage *offer, std::string *why) {
  const guint n = gst_sdp_message_medias_len(offer);
  if (n > kMaxOfferMlines) {
    *why = "the offer has " + std::to_string(n) + " m-lines; at most " +
           std::to_string(kMaxOfferMlines) + " are served";
    return 422;
  }
  std::set<std::string> mids;
  for (guint i = 0; i < n; i++) {
    const GstSDPMedia *m = gst_sdp_message_get_media(offer, i);
    const std::string where = "m-line " + std::to_string(i);
    if (const gchar *mid = gst_sdp_media_get_attribute_val(m, "mid")) {
      if (!mids.insert(mid).second) {
        *why = where + " repeats a=mid:" + std::string(mid) + " (mids must be unique)";
        return 400;
      }
    }
    // A rejected m-line (port 0, not bundle-only) needs nothing more.
    if (gst_sdp_media_get_port(m) == 0 && !gst_sdp_media_get_attribute_val(m, "bundle-only"))
      continue;
    for (const char *cred : {"ice-ufrag", "ice-pwd"}) {
      const gchar *v = attribute(offer, m, cred);
      if (!v || !*v) {
        *why = where + " has no a=" + std::string(cred) + " (ICE credentials are required)";
        return 400;
      }
    }
    const gchar *fp = attribute(offer, m, "fingerprint");
    if (!fp || !*fp) {
      *why = where + " has no a=fingerprint (DTLS is required)";
      return 400;
    }
    const std::string value = fp;
    const std::string hash = value.substr(0, value.find(' '));
    bool supported = false;
    for (const char *h : {"sha-1", "sha-224", "sha-256", "sha-384", "sha-512"})
      supported |= g_ascii_strcasecmp(hash.c_str(), h) == 0;
    if (!supported || value.find(' ') == std::string::npos) {
      *why = where + " has a fingerprint with hash '" + hash +
             "'; supported: sha-1, sha-224, sha-256, sha-384, sha-512";
      return 422;
    }
  }
  return 0;
}

}  // namespace whipwhep
