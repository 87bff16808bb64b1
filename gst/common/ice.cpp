#include "ice.h"

#include "shared-ice.h"

#include <agent.h>
#include <gio/gio.h>

#include "gobj.h"

GST_DEBUG_CATEGORY_STATIC(ice_debug);
#define GST_CAT_DEFAULT ice_debug

namespace whipwhep {

static void ensure_debug() {
  static gsize init = 0;
  if (g_once_init_enter(&init)) {
    GST_DEBUG_CATEGORY_INIT(ice_debug, "whipwhep-ice", 0, "whipwhep ICE configuration");
    g_once_init_leave(&init, 1);
  }
}

std::vector<std::string> split_list(const std::string &s) {
  std::vector<std::string> out;
  gobj::Unique<gchar *> parts(g_strsplit(s.c_str(), ",", -1));
  for (gchar **p = parts.get(); p && *p; p++) {
    std::string item = g_strstrip(*p);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::string join_list(const std::vector<std::string> &items) {
  std::string out;
  for (const auto &i : items) {
    if (!out.empty()) out += ',';
    out += i;
  }
  return out;
}

bool configure_nice_agent(NiceAgent *agent, const IceSettings &settings) {
  ensure_debug();
  // UPnP multicasts SSDP on every interface: never wanted.
  g_object_set(agent, "upnp", FALSE, "ice-tcp", settings.ice_tcp ? TRUE : FALSE, nullptr);
  bool ok = true;
  for (const auto &addr : settings.local_addresses) {
    NiceAddress na;
    nice_address_init(&na);
    if (!nice_address_set_from_string(&na, addr.c_str())) {
      GST_WARNING("ignoring invalid ICE address '%s'", addr.c_str());
      ok = false;
    } else if (!nice_agent_add_local_address(agent, &na)) {
      GST_WARNING("could not add local address '%s'", addr.c_str());
      ok = false;
    }
  }
  return ok;
}

bool configure_ice(GstElement *webrtcbin, const IceSettings &settings) {
  ensure_debug();
  bool ok = true;
  gobj::Ref<GstObject> ice;
  g_object_get(webrtcbin, "ice-agent", ice.out(), nullptr);
  // A shared agent was configured once, when the pool made it. Only
  // GstWebRTCNice has an "agent"; check so another ICE implementation does
  // not make us emit GLib criticals.
  if (ice && !is_shared_ice(ice.get()) &&
      g_object_class_find_property(G_OBJECT_GET_CLASS(ice.get()), "agent")) {
    gobj::Ref<NiceAgent> agent;
    g_object_get(ice.get(), "agent", agent.out(), nullptr);
    if (agent) ok = configure_nice_agent(agent.get(), settings);
  }
  if (!settings.stun_server.empty())
    g_object_set(webrtcbin, "stun-server", settings.stun_server.c_str(), nullptr);
  for (const auto &turn : settings.turn_servers) {
    gboolean added = FALSE;
    g_signal_emit_by_name(webrtcbin, "add-turn-server", turn.c_str(), &added);
    if (!added) {
      GST_WARNING_OBJECT(webrtcbin, "webrtcbin refused TURN server");
      ok = false;
    }
  }
  return ok;
}

namespace {

// Converts "stun:host:port" / "turn:host:port?transport=udp" to webrtcbin's
// "stun://host:port" / "turn://user:pass@host:port?transport=udp".
std::string to_webrtcbin_url(const std::string &url, const std::string &user,
                             const std::string &cred) {
  auto colon = url.find(':');
  if (colon == std::string::npos) return {};
  std::string scheme = url.substr(0, colon);
  std::string rest = url.substr(colon + 1);
  while (!rest.empty() && rest[0] == '/') rest.erase(0, 1);
  if (scheme == "stun" || scheme == "stuns") return scheme + "://" + rest;
  if (scheme == "turn" || scheme == "turns") {
    gobj::Unique<gchar> u(g_uri_escape_string(user.c_str(), nullptr, FALSE));
    gobj::Unique<gchar> p(g_uri_escape_string(cred.c_str(), nullptr, FALSE));
    return scheme + "://" + u.get() + ":" + p.get() + "@" + rest;
  }
  return {};
}

}  // namespace

std::vector<std::string> parse_ice_server_links(const std::string &header) {
  std::vector<std::string> out;
  size_t i = 0;
  const size_t n = header.size();
  while (i < n) {
    size_t lt = header.find('<', i);
    if (lt == std::string::npos) break;
    size_t gt = header.find('>', lt);
    if (gt == std::string::npos) break;
    std::string url = header.substr(lt + 1, gt - lt - 1);
    // Parameters run until the next ',' that is not inside quotes.
    std::string rel, user, cred;
    size_t p = gt + 1;
    while (p < n && header[p] != ',') {
      while (p < n && (header[p] == ';' || g_ascii_isspace(header[p]))) p++;
      size_t eq = p;
      while (eq < n && header[eq] != '=' && header[eq] != ';' && header[eq] != ',') eq++;
      std::string key = header.substr(p, eq - p);
      std::string value;
      p = eq;
      if (p < n && header[p] == '=') {
        p++;
        if (p < n && header[p] == '"') {
          size_t end = p + 1;
          while (end < n && header[end] != '"') {
            if (header[end] == '\\' && end + 1 < n) end++;
            end++;
          }
          value = header.substr(p + 1, end - p - 1);
          p = end < n ? end + 1 : n;
        } else {
          size_t end = p;
          while (end < n && header[end] != ';' && header[end] != ',') end++;
          value = header.substr(p, end - p);
          p = end;
        }
      }
      gobj::Unique<gchar> k(g_ascii_strdown(g_strstrip(&key[0]), -1));
      std::string lk = k.get();
      if (lk == "rel") rel = value;
      else if (lk == "username") user = value;
      else if (lk == "credential") cred = value;
    }
    if (rel == "ice-server") {
      std::string conv = to_webrtcbin_url(url, user, cred);
      if (!conv.empty()) out.push_back(conv);
    }
    i = p < n ? p + 1 : n;
  }
  return out;
}

std::string format_ice_server_link(const std::string &url, const std::string &username,
                                   const std::string &credential) {
  std::string link = "<" + url + ">; rel=\"ice-server\"";
  if (!username.empty()) link += "; username=\"" + username + "\"";
  if (!credential.empty())
    link += "; credential=\"" + credential + "\"; credential-type=\"password\"";
  return link;
}

}  // namespace whipwhep
