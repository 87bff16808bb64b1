#include "static-files.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "common/gobj.h"

namespace server {

namespace {

// Pages are small; anything bigger is not one of ours.
constexpr goffset kMaxFileBytes = 4 * 1024 * 1024;

bool is_uid(const char *s, size_t len) {
  if (len != 32) return false;
  for (size_t i = 0; i < len; i++)
    if (!g_ascii_isdigit(s[i]) && !(s[i] >= 'a' && s[i] <= 'f')) return false;
  return true;
}

// A plain file name: letters, digits, '-', '_', '.', not starting with '.'.
// This alone keeps requests inside the directory (no '/', no '..', no '%').
bool is_plain_name(const std::string &name) {
  if (name.empty() || name.size() > 100 || name[0] == '.') return false;
  for (char c : name)
    if (!g_ascii_isalnum(c) && c != '-' && c != '_' && c != '.') return false;
  return true;
}

const char *mime_type(const std::string &name) {
  static const struct {
    const char *suffix, *type;
  } kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".txt", "text/plain; charset=utf-8"},
      {".webmanifest", "application/manifest+json"},
  };
  for (const auto &t : kTypes)
    if (g_str_has_suffix(name.c_str(), t.suffix)) return t.type;
  return nullptr;  // unknown types are not served
}

// Maps a request path to the file name it serves, or "" when not ours.
std::string route(const char *path) {
  const std::string p = path ? path : "";
  if (p == "/" || p == "/index.html") return "index.html";
  // /{uid}/watch and /{uid}/publish (one optional trailing slash)
  if (p.size() > 34 && p[0] == '/' && is_uid(p.c_str() + 1, 32) && p[33] == '/') {
    std::string rest = p.substr(34);
    if (!rest.empty() && rest.back() == '/') rest.pop_back();
    if (rest == "watch") return "watch.html";
    if (rest == "publish") return "publish.html";
    return "";
  }
  if (p.size() > 1 && p[0] == '/' && is_plain_name(p.substr(1)) && mime_type(p.substr(1)))
    return p.substr(1);
  return "";
}

void set_common_headers(SoupMessageHeaders *h, const std::string &name) {
  soup_message_headers_replace(h, "X-Content-Type-Options", "nosniff");
  // The publish page's URL carries the WHIP secret: never leak it in Referer.
  soup_message_headers_replace(h, "Referrer-Policy", "no-referrer");
  if (g_str_has_suffix(name.c_str(), ".html")) {
    // The player is meant to be embedded anywhere; the dashboard and the
    // publish page (token, camera) only in our own pages.
    const bool embeddable = name == "watch.html";
    std::string csp =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self' blob: mediastream:; connect-src *; object-src 'none'; "
        "base-uri 'none'; frame-ancestors ";
    csp += embeddable ? "*" : "'self'";
    soup_message_headers_replace(h, "Content-Security-Policy", csp.c_str());
  }
}

void reply_text(SoupServerMessage *msg, guint status, const char *text) {
  soup_server_message_set_status(msg, status, nullptr);
  soup_server_message_set_response(msg, "text/plain; charset=utf-8", SOUP_MEMORY_COPY, text,
                                   strlen(text));
}

void serve_config(SoupServerMessage *msg, const std::string &account_id) {
  // Non-secret facts the dashboard needs before it has a token.
  gobj::Ref<JsonBuilder> b = gobj::adopt(json_builder_new());
  json_builder_begin_object(b.get());
  json_builder_set_member_name(b.get(), "accountId");
  json_builder_add_string_value(b.get(), account_id.c_str());
  json_builder_set_member_name(b.get(), "apiBase");
  json_builder_add_string_value(
      b.get(), ("/client/v4/accounts/" + account_id + "/stream/live_inputs").c_str());
  json_builder_end_object(b.get());
  g_autoptr(JsonNode) root = json_builder_get_root(b.get());
  g_autofree gchar *text = json_to_string(root, FALSE);
  soup_server_message_set_status(msg, SOUP_STATUS_OK, nullptr);
  soup_server_message_set_response(msg, "application/json", SOUP_MEMORY_COPY, text,
                                   strlen(text));
  SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
  soup_message_headers_replace(h, "Cache-Control", "no-store");
  set_common_headers(h, "config.json");
}

}  // namespace

std::string web_root() {
  const char *env = g_getenv("WHIPWHEP_WEB_ROOT");
  if (env && *env) return env;
  for (const char *dir : {WHIPWHEP_WEB_INSTALL_DIR, WHIPWHEP_WEB_SOURCE_DIR}) {
    g_autofree gchar *index = g_build_filename(dir, "index.html", nullptr);
    if (g_file_test(index, G_FILE_TEST_IS_REGULAR)) return dir;
  }
  return "";
}

bool serve_static(SoupServerMessage *msg, const char *path, const std::string &account_id) {
  const bool is_config = g_strcmp0(path, "/config.json") == 0;
  const std::string name = is_config ? "config.json" : route(path);
  if (name.empty()) return false;

  const char *method = soup_server_message_get_method(msg);
  SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
  if (g_strcmp0(method, "GET") != 0 && g_strcmp0(method, "HEAD") != 0) {
    soup_message_headers_replace(h, "Allow", "GET, HEAD");
    reply_text(msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "the web pages take GET and HEAD only\n");
    return true;
  }
  if (is_config) {
    serve_config(msg, account_id);
    return true;
  }

  static const std::string root = web_root();
  if (root.empty()) {
    reply_text(msg, SOUP_STATUS_NOT_FOUND,
               "the web pages are not installed (set WHIPWHEP_WEB_ROOT to their directory)\n");
    return true;
  }
  g_autofree gchar *file = g_build_filename(root.c_str(), name.c_str(), nullptr);
  GStatBuf st;
  if (g_stat(file, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > kMaxFileBytes) {
    reply_text(msg, SOUP_STATUS_NOT_FOUND, "no such page\n");
    return true;
  }
  // Files have no content hash in their names (no build step), so browsers
  // revalidate every time; the ETag makes that a cheap 304.
  g_autofree gchar *etag = g_strdup_printf("\"%" G_GINT64_MODIFIER "x-%" G_GINT64_MODIFIER "x\"",
                                           static_cast<gint64>(st.st_size),
                                           static_cast<gint64>(st.st_mtime));
  soup_message_headers_replace(h, "ETag", etag);
  soup_message_headers_replace(h, "Cache-Control", "no-cache");
  set_common_headers(h, name);
  const char *if_none_match =
      soup_message_headers_get_one(soup_server_message_get_request_headers(msg), "If-None-Match");
  if (if_none_match && g_strcmp0(if_none_match, etag) == 0) {
    soup_server_message_set_status(msg, SOUP_STATUS_NOT_MODIFIED, nullptr);
    return true;
  }
  gchar *contents = nullptr;
  gsize length = 0;
  if (!g_file_get_contents(file, &contents, &length, nullptr)) {
    reply_text(msg, SOUP_STATUS_NOT_FOUND, "no such page\n");
    return true;
  }
  soup_server_message_set_status(msg, SOUP_STATUS_OK, nullptr);
  soup_server_message_set_response(msg, mime_type(name), SOUP_MEMORY_TAKE, contents, length);
  return true;
}

}  // namespace server
