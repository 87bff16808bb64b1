#include "config.h"

#include <gio/gio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <gst/gst.h>

#include "common/gobj.h"
#include "default-config.h"
#include "common/ice.h"

namespace server {

std::string embedded_default_config() { return kEmbeddedDefaultConfig; }

namespace {

bool get_string(GKeyFile *kf, const char *group, const char *key, std::string *out,
                GError **error) {
  if (!g_key_file_has_key(kf, group, key, nullptr)) return true;
  g_autofree gchar *v = g_key_file_get_string(kf, group, key, error);
  if (!v) return false;
  *out = g_strstrip(v);
  return true;
}

bool get_list(GKeyFile *kf, const char *group, const char *key, std::vector<std::string> *out,
              GError **error) {
  if (!g_key_file_has_key(kf, group, key, nullptr)) return true;
  gsize n = 0;
  g_auto(GStrv) v = g_key_file_get_string_list(kf, group, key, &n, error);
  if (!v) {
    // An empty value is an empty list, not an error.
    if (error && *error && (*error)->code == G_KEY_FILE_ERROR_INVALID_VALUE) return false;
    g_clear_error(error);
    out->clear();
    return true;
  }
  out->clear();
  for (gsize i = 0; i < n; i++) {
    std::string item = g_strstrip(v[i]);
    if (!item.empty()) out->push_back(item);
  }
  return true;
}

bool get_bool(GKeyFile *kf, const char *group, const char *key, bool *out, GError **error) {
  if (!g_key_file_has_key(kf, group, key, nullptr)) return true;
  GError *local = nullptr;
  const gboolean v = g_key_file_get_boolean(kf, group, key, &local);
  if (local) {
    g_propagate_error(error, local);
    return false;
  }
  *out = v != FALSE;
  return true;
}

template <class T>
bool get_uint(GKeyFile *kf, const char *group, const char *key, T *out, guint64 min,
              guint64 max, const std::string &origin, GError **error) {
  std::string text;
  if (!get_string(kf, group, key, &text, error)) return false;
  if (!g_key_file_has_key(kf, group, key, nullptr)) return true;
  guint64 v = 0;
  if (!g_ascii_string_to_unsigned(text.c_str(), 10, min, max, &v, nullptr)) {
    g_set_error(error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                "%s: [%s] %s=%s is not a number between %" G_GUINT64_FORMAT
                " and %" G_GUINT64_FORMAT,
                origin.c_str(), group, key, text.c_str(), min, max);
    return false;
  }
  *out = static_cast<T>(v);
  return true;
}

// "turn:user:pass@host:port" -> url "turn:host:port" + credentials.
IceServer parse_ice_server(const std::string &text) {
  IceServer s;
  const auto colon = text.find(':');
  const auto at = text.rfind('@');
  if (colon != std::string::npos && at != std::string::npos && at > colon) {
    const std::string scheme = text.substr(0, colon);
    std::string userinfo = text.substr(colon + 1, at - colon - 1);
    if (userinfo.rfind("//", 0) == 0) userinfo.erase(0, 2);
    const auto sep = userinfo.find(':');
    s.username = userinfo.substr(0, sep);
    if (sep != std::string::npos) s.credential = userinfo.substr(sep + 1);
    s.url = scheme + ":" + text.substr(at + 1);
  } else {
    s.url = text;
  }
  return s;
}

}  // namespace

bool parse_listen(const std::string &text, std::string *host, guint *port, GError **error) {
  // Bracketed IPv6 or host:port; GLib's parser accepts both and a missing port.
  g_autoptr(GSocketConnectable) addr = g_network_address_parse(text.c_str(), 8080, nullptr);
  if (!addr) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "listen address \"%s\" is not ADDR:PORT", text.c_str());
    return false;
  }
  std::string h = g_network_address_get_hostname(G_NETWORK_ADDRESS(addr));
  if (h == "localhost") h = "127.0.0.1";
  g_autoptr(GInetAddress) inet = g_inet_address_new_from_string(h.c_str());
  if (!inet) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "listen address \"%s\" must be an IP address (e.g. 127.0.0.1:8080, [::1]:8080)",
                text.c_str());
    return false;
  }
  *host = h;
  *port = g_network_address_get_port(G_NETWORK_ADDRESS(addr));
  return true;
}

bool load_config_data(const std::string &data, const std::string &origin, Config *config,
                      GError **error) {
  g_autoptr(GKeyFile) kf = g_key_file_new();
  GError *local = nullptr;
  if (!g_key_file_load_from_data(kf, data.data(), data.size(), G_KEY_FILE_NONE, &local)) {
    g_set_error(error, local->domain, local->code, "%s: %s", origin.c_str(), local->message);
    g_error_free(local);
    return false;
  }
  Config c = *config;
  std::string listen;
  std::vector<std::string> ice_servers;
  bool have_ice_servers = g_key_file_has_key(kf, "ice", "ice-servers", nullptr);
  bool ok = get_string(kf, "server", "listen", &listen, &local) &&
            get_string(kf, "server", "public-url", &c.public_url, &local) &&
            get_string(kf, "server", "data-dir", &c.data_dir, &local) &&
            get_string(kf, "server", "account-id", &c.account_id, &local) &&
            get_list(kf, "server", "api-tokens", &c.api_tokens, &local) &&
            get_string(kf, "ice", "ice-addresses", &c.ice_addresses, &local) &&
            get_list(kf, "ice", "ice-servers", &ice_servers, &local) &&
            get_uint(kf, "limits", "max-live-inputs", &c.limits.max_live_inputs, 1, G_MAXUINT32,
                     origin, &local) &&
            get_uint(kf, "limits", "max-viewers-per-input", &c.limits.max_viewers_per_input, 1,
                     G_MAXUINT32, origin, &local) &&
            get_uint(kf, "limits", "max-body-bytes", &c.limits.max_body_bytes, 1024,
                     64 * 1024 * 1024, origin, &local) &&
            get_uint(kf, "limits", "max-header-bytes", &c.limits.max_header_bytes, 1024,
                     60 * 1024, origin, &local) &&
            get_uint(kf, "limits", "max-meta-bytes", &c.limits.max_meta_bytes, 16, 1024 * 1024,
                     origin, &local) &&
            get_uint(kf, "limits", "request-timeout-seconds", &c.limits.request_timeout_seconds,
                     1, 3600, origin, &local) &&
            get_list(kf, "cors", "allowed-origins", &c.cors_origins, &local) &&
            get_bool(kf, "whip", "replace-publisher", &c.replace_publisher, &local) &&
            get_string(kf, "pipeline", "template", &c.pipeline_template, &local);
  if (ok && !listen.empty()) ok = parse_listen(listen, &c.listen_host, &c.listen_port, &local);
  if (!ok) {
    g_set_error(error, local->domain, local->code, "%s: %s", origin.c_str(), local->message);
    g_error_free(local);
    return false;
  }
  if (have_ice_servers) {
    c.ice_servers.clear();
    for (const auto &s : ice_servers) c.ice_servers.push_back(parse_ice_server(s));
  }
  while (!c.public_url.empty() && c.public_url.back() == '/') c.public_url.pop_back();
  *config = std::move(c);
  return true;
}

bool load_config_file(const std::string &path, Config *config, GError **error) {
  gchar *contents = nullptr;
  gsize length = 0;
  if (!g_file_get_contents(path.c_str(), &contents, &length, error)) return false;
  gobj::Unique<gchar> owned(contents);
  return load_config_data(std::string(owned.get(), length), path, config, error);
}

std::string expand_pipeline_template(const std::string &description, const std::string &uid,
                                     const std::string &data_dir) {
  g_autofree gchar *abs = g_canonicalize_filename(data_dir.c_str(), nullptr);
  std::string out = description;
  for (const auto &[key, value] :
       {std::pair<std::string, std::string>{"@UID@", uid}, {"@DATA_DIR@", abs}}) {
    for (size_t at = out.find(key); at != std::string::npos; at = out.find(key, at + value.size()))
      out.replace(at, key.size(), value);
  }
  return out;
}

namespace {

// GStreamer 1.22's parser dereferences NULL on some descriptions, e.g. a link
// between two references with no element at all ("a. ! b.c"), found by the
// config fuzzer. Parse once in a throw-away child first, so that such a
// template is refused with a message instead of crashing the server.
bool parser_survives(const std::string &description) {
  fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return true;  // cannot check: parse in-process as before
  if (pid == 0) {
    GError *e = nullptr;
    GstElement *p = gst_parse_launch_full(description.c_str(), nullptr,
                                          GST_PARSE_FLAG_FATAL_ERRORS, &e);
    (void)p;
    _exit(0);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

bool validate_pipeline_template(const std::string &description, const std::string &data_dir,
                                GError **error) {
  GError *parse_error = nullptr;
  // FATAL_ERRORS: a template naming an element that does not exist is an
  // error, not a pipeline with a hole in it. Parsed with a uid that cannot
  // exist; nothing is started, so no file is opened.
  const std::string expanded =
      expand_pipeline_template(description, std::string(32, '0'), data_dir);
  if (!parser_survives(expanded)) {
    g_set_error(error, GST_PARSE_ERROR, GST_PARSE_ERROR_SYNTAX,
                "invalid pipeline template: GStreamer's parser crashes on it (e.g. a link "
                "between two references with no element): '%s'",
                expanded.c_str());
    return false;
  }
  auto pipeline = gobj::sink(gst_parse_launch_full(expanded.c_str(), nullptr,
                                                   GST_PARSE_FLAG_FATAL_ERRORS, &parse_error));
  if (!pipeline) {
    g_set_error(error, GST_PARSE_ERROR, parse_error ? parse_error->code : 0,
                "invalid pipeline template: %s",
                parse_error ? parse_error->message : "could not parse it");
    g_clear_error(&parse_error);
    return false;
  }
  g_clear_error(&parse_error);
  struct Want {
    const char *name, *factory;
  };
  for (const Want &w : {Want{kSourceName, "whipserversrc"}, Want{kSinkName, "whepserversink"}}) {
    gobj::Ref<GstElement> el;
    if (GST_IS_BIN(pipeline.get()))
      el = gobj::adopt(gst_bin_get_by_name(GST_BIN(pipeline.get()), w.name));
    GstElementFactory *f = el ? gst_element_get_factory(el.get()) : nullptr;
    if (!f || g_strcmp0(GST_OBJECT_NAME(f), w.factory) != 0) {
      g_set_error(error, GST_PARSE_ERROR, GST_PARSE_ERROR_NO_SUCH_ELEMENT,
                  "invalid pipeline template: it needs a %s named \"%s\" (e.g. \"%s name=%s\")",
                  w.factory, w.name, w.factory, w.name);
      gst_element_set_state(pipeline.get(), GST_STATE_NULL);
      return false;
    }
  }
  gst_element_set_state(pipeline.get(), GST_STATE_NULL);
  return true;
}

}  // namespace server
