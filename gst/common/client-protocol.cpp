#include "client-protocol.h"

#include <gio/gio.h>
#include <libsoup/soup.h>

#include "gobj.h"

namespace whipwhep {

std::string resolve_location(const std::string &request_url, const std::string &location) {
  if (location.empty()) return {};
  gobj::Unique<GError> err;
  gobj::Unique<GUri> base(g_uri_parse(request_url.c_str(), G_URI_FLAGS_NONE, gobj::out(err)));
  if (!base) return {};
  gobj::Unique<GUri> resolved(
      g_uri_parse_relative(base.get(), location.c_str(), G_URI_FLAGS_NONE, gobj::out(err)));
  if (!resolved) return {};
  gobj::Unique<gchar> text(g_uri_to_string(resolved.get()));
  return text ? text.get() : "";
}

bool is_method_preserving_redirect(guint status) { return status == 307 || status == 308; }

std::string server_reason(guint status, const std::string &reason_phrase,
                          const std::string &body) {
  // A short plain-text body is the server's own explanation (our servers and
  // most WHIP servers send one); long bodies (HTML error pages) are not.
  std::string line = body.substr(0, body.find_first_of("\r\n"));
  gobj::Unique<gchar> stripped(g_strstrip(g_strdup(line.c_str())));
  std::string text = stripped.get();
  bool printable = !text.empty() && text.size() <= 300 && text[0] != '<';
  for (unsigned char c : text)
    if (c < 0x20 && c != '\t') printable = false;
  if (printable) return text;
  if (!reason_phrase.empty()) return reason_phrase;
  const char *standard = soup_status_get_phrase(status);
  return standard && *standard ? standard : "no reason given";
}

std::string describe_http_failure(const std::string &method, const std::string &url,
                                  guint status, const std::string &reason) {
  std::string msg = method + " " + url + ": HTTP " + std::to_string(status);
  const char *phrase = soup_status_get_phrase(status);
  if (phrase && *phrase) msg += std::string(" ") + phrase;
  if (!reason.empty() && (!phrase || reason != phrase)) msg += ": " + reason;
  return msg;
}

bool is_http_url(const std::string &url) {
  gobj::Unique<GUri> uri(g_uri_parse(url.c_str(), G_URI_FLAGS_NONE, nullptr));
  if (!uri || !g_uri_get_host(uri.get()) || !*g_uri_get_host(uri.get())) return false;
  const char *scheme = g_uri_get_scheme(uri.get());
  return g_ascii_strcasecmp(scheme, "http") == 0 || g_ascii_strcasecmp(scheme, "https") == 0;
}

}  // namespace whipwhep
