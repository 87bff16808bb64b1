#include "http-api.h"

#include <memory>

#include "common/http-listener.h"
#include "common/ice.h"
#include "static-files.h"

namespace server {

namespace {

constexpr int kListenBacklog = 1024;  // the kernel caps it at net.core.somaxconn

constexpr const char *kCollectionMethods = "GET, POST, OPTIONS";
constexpr const char *kItemMethods = "GET, PUT, DELETE, OPTIONS";
constexpr const char *kEndpointMethods = "POST, OPTIONS";
constexpr const char *kSessionMethods = "PATCH, DELETE, OPTIONS";

bool method_in(const char *method, const char *allow) {
  g_auto(GStrv) parts = g_strsplit(allow, ", ", -1);
  for (char **p = parts; *p; p++)
    if (g_strcmp0(*p, method) == 0) return true;
  return false;
}

bool is_api_path(const std::vector<std::string> &s) {
  return !s.empty() && s[0] == "client";
}

// A refused chunked body is drained up to this many times the limit.
constexpr gsize kDrainFactor = 16;

// Bytes of body read so far for a request without Content-Length.
constexpr const char *kBodyCountKey = "whipwhep-body-bytes";

}  // namespace

std::vector<std::string> split_path(const char *path) {
  std::vector<std::string> out;
  g_auto(GStrv) parts = g_strsplit(path ? path : "", "/", -1);
  for (char **p = parts; *p; p++)
    if (**p) out.emplace_back(*p);
  return out;
}

bool is_id(const std::string &s) {
  if (s.size() != 32) return false;
  for (char c : s)
    if (!g_ascii_isdigit(c) && !(c >= 'a' && c <= 'f')) return false;
  return true;
}

HttpApi::HttpApi(const Config &config, std::vector<std::string> api_tokens,
                 std::string account_id, LiveInputs &inputs)
    : config_(config),
      api_tokens_(std::move(api_tokens)),
      account_id_(std::move(account_id)),
      inputs_(inputs) {}

HttpApi::~HttpApi() { disconnect(); }

std::string HttpApi::api_base_path() const {
  return "/client/v4/accounts/" + account_id_ + "/stream";
}

bool HttpApi::listen(GError **error) {
  // raw-paths: we see the path as sent, so "%2F", "%2E%2E" and friends stay
  // inside one segment and simply fail to be an id (404), rather than being
  // decoded into new segments.
  server_ = gobj::adopt(
      soup_server_new("server-header", "whipwhep-server ", "raw-paths", TRUE, nullptr));
  g_signal_connect(server_.get(), "request-started", G_CALLBACK(&HttpApi::on_request_started),
                   this);
  whipwhep::close_connections_after_response(server_.get());
  whipwhep::release_leaked_accept_refs(server_.get());
  soup_server_add_early_handler(server_.get(), nullptr, &HttpApi::on_early, this, nullptr);
  soup_server_add_handler(server_.get(), nullptr, &HttpApi::on_request, this, nullptr);
  g_autoptr(GSocketAddress) addr =
      g_inet_socket_address_new_from_string(config_.listen_host.c_str(), config_.listen_port);
  if (!addr) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "invalid listen address %s",
                config_.listen_host.c_str());
    return false;
  }
  // Our own socket so that the accept backlog is not GLib's default of 10:
  // a burst of clients (a page load, 50 API clients) would overflow it and
  // see connection resets.
  g_autoptr(GSocket) sock = g_socket_new(g_socket_address_get_family(addr), G_SOCKET_TYPE_STREAM,
                                         G_SOCKET_PROTOCOL_TCP, error);
  if (!sock) return false;
  g_socket_set_listen_backlog(sock, kListenBacklog);
  if (!g_socket_bind(sock, addr, TRUE, error) || !g_socket_listen(sock, error) ||
      !soup_server_listen_socket(server_.get(), sock, SoupServerListenOptions(0), error))
    return false;
  GSList *uris = soup_server_get_uris(server_.get());
  if (uris) {
    GUri *uri = static_cast<GUri *>(uris->data);
    const bool v6 = strchr(g_uri_get_host(uri), ':') != nullptr;
    g_autofree gchar *s = g_strdup_printf("http://%s%s%s:%d", v6 ? "[" : "", g_uri_get_host(uri),
                                          v6 ? "]" : "", g_uri_get_port(uri));
    bound_url_ = s;
  }
  g_slist_free_full(uris, reinterpret_cast<GDestroyNotify>(g_uri_unref));
  return true;
}

void HttpApi::disconnect() {
  if (server_) soup_server_disconnect(server_.get());
}

// --- responses ---------------------------------------------------------------

void HttpApi::add_common_headers(SoupServerMessage *msg, bool media) {
  SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
  const char *origin =
      soup_message_headers_get_one(soup_server_message_get_request_headers(msg), "Origin");
  bool any = false, listed = false;
  for (const auto &o : config_.cors_origins) {
    if (o == "*") any = true;
    if (origin && o == origin) listed = true;
  }
  if (any) {
    soup_message_headers_replace(h, "Access-Control-Allow-Origin", "*");
  } else if (listed) {
    soup_message_headers_replace(h, "Access-Control-Allow-Origin", origin);
    soup_message_headers_append(h, "Vary", "Origin");
  }
  soup_message_headers_replace(h, "Access-Control-Expose-Headers", whipwhep::kExposeHeaders);
  if (media) soup_message_headers_replace(h, "protocol-version", whipwhep::kProtocolVersion);
}

void HttpApi::reply_json(SoupServerMessage *msg, guint status, const std::string &body) {
  soup_server_message_set_status(msg, status, nullptr);
  soup_server_message_set_response(msg, "application/json", SOUP_MEMORY_COPY, body.data(),
                                   body.size());
  add_common_headers(msg, false);
}

void HttpApi::reply_api_error(SoupServerMessage *msg, guint status, int code,
                              const std::string &text) {
  reply_json(msg, status, envelope_error(code, text));
}

void HttpApi::reply_text(SoupServerMessage *msg, guint status, const std::string &text) {
  std::string body = text;
  if (body.empty() || body.back() != '\n') body += '\n';
  soup_server_message_set_status(msg, status, nullptr);
  soup_server_message_set_response(msg, "text/plain; charset=utf-8", SOUP_MEMORY_COPY,
                                   body.data(), body.size());
  add_common_headers(msg, true);
}

void HttpApi::add_ice_links(SoupMessageHeaders *h) {
  // One Link line per server with quoted parameters (OBS splits on commas).
  for (const auto &s : config_.ice_servers)
    soup_message_headers_append(
        h, "Link", whipwhep::format_ice_server_link(s.url, s.username, s.credential).c_str());
}

void HttpApi::preflight(SoupServerMessage *msg, const char *methods, bool with_ice_links) {
  soup_server_message_set_status(msg, SOUP_STATUS_NO_CONTENT, nullptr);
  SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
  soup_message_headers_replace(h, "Allow", methods);
  soup_message_headers_replace(h, "Access-Control-Allow-Methods", methods);
  soup_message_headers_replace(h, "Access-Control-Allow-Headers", whipwhep::kAllowHeaders);
  soup_message_headers_replace(h, "Access-Control-Max-Age", "86400");
  if (with_ice_links) add_ice_links(h);
  add_common_headers(msg, with_ice_links);
}

// --- slow clients --------------------------------------------------------------

namespace {

// The deadline of one request, attached to its message; dropping it (request
// read, or message finished) removes the timer.
struct ReadDeadline {
  GSource *timer = nullptr;
  ~ReadDeadline() {
    if (timer) {
      g_source_destroy(timer);
      g_source_unref(timer);
    }
  }
};
constexpr const char *kDeadlineKey = "whipwhep-read-deadline";

}  // namespace

void HttpApi::on_request_started(SoupServer *, SoupServerMessage *msg, gpointer data) {
  auto *self = static_cast<HttpApi *>(data);
  auto *deadline = new ReadDeadline();
  deadline->timer = g_timeout_source_new_seconds(self->config_.limits.request_timeout_seconds);
  // The timer holds no reference: the message owns the deadline, and the
  // deadline destroys the timer before the message can go away.
  g_source_set_callback(
      deadline->timer,
      +[](gpointer m) -> gboolean {
        auto *msg = static_cast<SoupServerMessage *>(m);
        // Shutting the socket down makes libsoup's pending read fail: the
        // request is dropped and its connection freed like any other.
        if (GSocket *sock = soup_server_message_get_socket(msg))
          g_socket_shutdown(sock, TRUE, TRUE, nullptr);
        return G_SOURCE_REMOVE;
      },
      msg, nullptr);
  g_source_attach(deadline->timer, g_main_context_get_thread_default());
  g_object_set_data_full(G_OBJECT(msg), kDeadlineKey, deadline,
                         +[](gpointer d) { delete static_cast<ReadDeadline *>(d); });
  auto drop = +[](SoupServerMessage *m, gpointer) {
    g_object_set_data(G_OBJECT(m), kDeadlineKey, nullptr);
  };
  g_signal_connect(msg, "got-body", G_CALLBACK(drop), nullptr);
  g_signal_connect(msg, "finished", G_CALLBACK(drop), nullptr);
}

// --- body limits -------------------------------------------------------------

void HttpApi::on_early(SoupServer *, SoupServerMessage *msg, const char *path, GHashTable *,
                       gpointer data) {
  auto *self = static_cast<HttpApi *>(data);
  SoupMessageHeaders *rh = soup_server_message_get_request_headers(msg);
  // Headers first: libsoup takes up to 64 KiB of them; we take less.
  gsize header_bytes = 0;
  soup_message_headers_foreach(
      rh,
      +[](const char *name, const char *value, gpointer total) {
        *static_cast<gsize *>(total) += strlen(name) + strlen(value) + 4;  // ": " and CRLF
      },
      &header_bytes);
  if (header_bytes > self->config_.limits.max_header_bytes) {
    self->refuse_early(msg, path, 431,
                       "the request headers are " + std::to_string(header_bytes) +
                           " bytes; the limit is " +
                           std::to_string(self->config_.limits.max_header_bytes));
    return;
  }
  const gsize limit = self->config_.limits.max_body_bytes;
  const bool declared = soup_message_headers_get_encoding(rh) == SOUP_ENCODING_CONTENT_LENGTH;
  const goffset len = declared ? soup_message_headers_get_content_length(rh) : 0;
  if (declared && len >= 0 && static_cast<gsize>(len) <= limit) return;
  if (!declared) {
    // Chunked: count as it arrives (on_got_chunk).
    g_object_set_data(G_OBJECT(msg), kBodyCountKey, GSIZE_TO_POINTER(0));
    g_signal_connect(msg, "got-chunk", G_CALLBACK(&HttpApi::on_got_chunk), self);
    return;
  }
  // Setting a status here makes libsoup skip our handler; not keeping the
  // body means it is drained, never held in memory. With "Expect:
  // 100-continue" it is not even sent.
  self->refuse_early(msg, path, 413,
                     "the request body is " + std::to_string(len) + " bytes; the limit is " +
                         std::to_string(limit));
}

void HttpApi::refuse_early(SoupServerMessage *msg, const char *path, guint status,
                           const std::string &text) {
  soup_message_body_set_accumulate(soup_server_message_get_request_body(msg), FALSE);
  soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Connection",
                               "close");
  if (is_api_path(split_path(path)))
    reply_api_error(msg, status, kErrTooLarge, text);
  else
    reply_text(msg, status, text);
}

void HttpApi::on_got_chunk(SoupServerMessage *msg, GBytes *chunk, gpointer data) {
  auto *self = static_cast<HttpApi *>(data);
  gsize total = GPOINTER_TO_SIZE(g_object_get_data(G_OBJECT(msg), kBodyCountKey));
  total += g_bytes_get_size(chunk);
  g_object_set_data(G_OBJECT(msg), kBodyCountKey, GSIZE_TO_POINTER(total));
  if (total <= self->config_.limits.max_body_bytes) return;
  if (soup_server_message_get_status(msg) == 413) {
    // Already refused; it is only being drained. A client that keeps
    // sending far past the limit loses its connection.
    if (total > kDrainFactor * self->config_.limits.max_body_bytes)
      if (GSocket *sock = soup_server_message_get_socket(msg))
        g_socket_shutdown(sock, TRUE, TRUE, nullptr);
    return;
  }
  soup_message_body_truncate(soup_server_message_get_request_body(msg));
  self->refuse_early(msg, g_uri_get_path(soup_server_message_get_uri(msg)), 413,
                     "the request body exceeds the limit of " +
                         std::to_string(self->config_.limits.max_body_bytes) + " bytes");
}

// --- routing -----------------------------------------------------------------

void HttpApi::on_request(SoupServer *, SoupServerMessage *msg, const char *path, GHashTable *,
                         gpointer data) {
  auto *self = static_cast<HttpApi *>(data);
  const std::vector<std::string> s = split_path(path);
  if (is_api_path(s)) {
    self->handle_api(msg, s);
    return;
  }
  // /{key}/webRTC/publish[/{session}] and /{key}/webRTC/play[/{session}]
  if ((s.size() == 3 || s.size() == 4) && s[1] == "webRTC" &&
      (s[2] == "publish" || s[2] == "play")) {
    self->handle_media(msg, s[0], s[2] == "publish", s.size() == 4 ? s[3] : std::string());
    return;
  }
  if (serve_static(msg, path, self->account_id_)) return;  // the web pages
  self->reply_text(msg, 404, "nothing here: WHIP is POST /{secret}/webRTC/publish, WHEP is "
                             "POST /{uid}/webRTC/play, the API is under /client/v4/accounts/");
}

bool HttpApi::authorised(SoupServerMessage *msg) {
  const char *auth = soup_message_headers_get_one(soup_server_message_get_request_headers(msg),
                                                  "Authorization");
  // Every configured token is compared, in constant time each, so timing
  // says nothing about which (if any) came close.
  bool ok = false;
  for (const auto &token : api_tokens_)
    ok |= auth != nullptr && whipwhep::bearer_matches(auth, token);
  if (ok) return true;
  SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
  soup_message_headers_replace(
      h, "WWW-Authenticate",
      auth ? "Bearer realm=\"whipwhep\", error=\"invalid_token\"" : "Bearer realm=\"whipwhep\"");
  reply_api_error(msg, 401, kErrAuthentication,
                  auth ? "the API token is not valid"
                       : "missing API token: send Authorization: Bearer <token>");
  return false;
}

void HttpApi::handle_api(SoupServerMessage *msg, const std::vector<std::string> &s) {
  const char *method = soup_server_message_get_method(msg);
  // client v4 accounts {id} stream live_inputs [uid]
  const bool shape = (s.size() == 6 || s.size() == 7) && s[1] == "v4" && s[2] == "accounts" &&
                     s[4] == "stream" && s[5] == "live_inputs";
  if (!shape) {
    reply_api_error(msg, 404, kErrNotFound,
                    "no such API route; live inputs are at " + api_base_path() + "/live_inputs");
    return;
  }
  const bool item = s.size() == 7;
  const char *allow = item ? kItemMethods : kCollectionMethods;
  // Preflights carry no credentials: answer them before authenticating.
  if (g_strcmp0(method, "OPTIONS") == 0) {
    preflight(msg, allow, false);
    return;
  }
  if (!authorised(msg)) return;
  if (s[3] != account_id_) {
    reply_api_error(msg, 404, kErrNotFound, "no account " + s[3] + " on this server");
    return;
  }
  if (!method_in(method, allow)) {
    soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Allow", allow);
    reply_api_error(msg, 405, kErrMethodNotAllowed,
                    std::string("method ") + method + " is not allowed here; use " + allow);
    return;
  }
  const std::string uid = item ? s[6] : std::string();
  if (item && !is_id(uid)) {
    reply_api_error(msg, 404, kErrNotFound, "no live input with uid " + uid);
    return;
  }

  InputFields fields;
  const bool has_body = g_strcmp0(method, "POST") == 0 || g_strcmp0(method, "PUT") == 0;
  if (has_body) {
    SoupMessageBody *body = soup_server_message_get_request_body(msg);
    g_autoptr(GBytes) bytes = soup_message_body_flatten(body);
    gsize size = 0;
    const auto *data = static_cast<const char *>(g_bytes_get_data(bytes, &size));
    const std::string type = whipwhep::normalize_media_type(soup_message_headers_get_one(
        soup_server_message_get_request_headers(msg), "Content-Type"));
    if (size > 0 && type != "application/json") {
      reply_api_error(msg, 415, kErrUnsupportedMediaType,
                      "the body must be application/json, not " +
                          (type.empty() ? std::string("untyped") : type));
      return;
    }
    std::string why;
    if (!parse_input_fields(data, size, config_.limits, &fields, &why)) {
      reply_api_error(msg, 400, kErrBadRequest, why);
      return;
    }
  }

  const std::string public_url = config_.public_url;
  ApiError err;
  if (!item && g_strcmp0(method, "GET") == 0) {
    JsonArray *arr = json_array_new();
    const auto all = inputs_.list();
    for (const auto &r : all) json_array_add_element(arr, live_input_list_item(r));
    JsonObject *o = json_object_new();
    json_object_set_array_member(o, "liveInputs", arr);
    json_object_set_int_member(o, "range", static_cast<gint64>(all.size()));
    json_object_set_int_member(o, "total", static_cast<gint64>(all.size()));
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, o);
    reply_json(msg, 200, envelope_success(n));
  } else if (!item) {  // POST
    auto r = inputs_.create(fields, &err);
    if (!r) {
      if (err.http_status == 429)
        soup_message_headers_replace(soup_server_message_get_response_headers(msg),
                                     "Retry-After", "60");
      reply_api_error(msg, err.http_status, err.code, err.message);
      return;
    }
    reply_json(msg, 200,
               envelope_success(live_input_to_json(*r, inputs_.live_state(r->uid), public_url)));
  } else if (g_strcmp0(method, "GET") == 0) {
    auto r = inputs_.get(uid);
    if (!r) {
      reply_api_error(msg, 404, kErrNotFound, "no live input with uid " + uid);
      return;
    }
    reply_json(msg, 200,
               envelope_success(live_input_to_json(*r, inputs_.live_state(uid), public_url)));
  } else if (g_strcmp0(method, "PUT") == 0) {
    auto r = inputs_.update(uid, fields, &err);
    if (!r) {
      reply_api_error(msg, err.http_status, err.code, err.message);
      return;
    }
    reply_json(msg, 200,
               envelope_success(live_input_to_json(*r, inputs_.live_state(uid), public_url)));
  } else {  // DELETE
    if (!inputs_.remove(uid, &err)) {
      reply_api_error(msg, err.http_status, err.code, err.message);
      return;
    }
    reply_json(msg, 200, envelope_success(nullptr));
  }
}

void HttpApi::handle_media(SoupServerMessage *msg, const std::string &key, bool publish,
                           const std::string &session) {
  const std::string method = soup_server_message_get_method(msg);
  const char *allow = session.empty() ? kEndpointMethods : kSessionMethods;
  // Ids are 32 lowercase hex: anything else (encoded tricks, traversal,
  // other lengths) cannot name an input or a session.
  if (!is_id(key) || (!session.empty() && !is_id(session))) {
    reply_text(msg, 404,
               publish ? "no live input has this publish URL" : "no live input with this uid");
    return;
  }
  if (method == "OPTIONS") {
    // CORS preflight and discovery, answered here for every route (the
    // elements are never asked): ICE servers on the endpoints.
    preflight(msg, allow, session.empty());
    return;
  }
  if (!method_in(method.c_str(), allow)) {
    soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Allow", allow);
    reply_text(msg, 405, "method " + method + " is not allowed here; use " + allow);
    return;
  }
  SoupMessageHeaders *rh = soup_server_message_get_request_headers(msg);
  whipwhep::HttpRequest req;
  req.method = method;
  req.session = session;
  req.content_type = whipwhep::normalize_media_type(soup_message_headers_get_one(rh, "Content-Type"));
  // The server authorises WHIP by the secret in the URL; the elements'
  // auth-token stays empty, so the header is passed for completeness only.
  req.authorization = gobj::str_or(soup_message_headers_get_one(rh, "Authorization"));
  req.if_match = gobj::str_or(soup_message_headers_get_one(rh, "If-Match"));
  SoupMessageBody *body = soup_server_message_get_request_body(msg);
  if (body && body->length > 0) req.body = gobj::adopt(soup_message_body_flatten(body));

  if (method == "POST" && req.body && req.content_type != "application/sdp") {
    reply_text(msg, 415, "the offer must be sent as application/sdp, not " +
                             (req.content_type.empty() ? std::string("untyped")
                                                       : req.content_type));
    return;
  }
  if (method == "PATCH" && req.content_type != "application/trickle-ice-sdpfrag" &&
      req.content_type != "application/sdp") {
    reply_text(msg, 415, "PATCH takes application/trickle-ice-sdpfrag (or application/sdp), not " +
                             (req.content_type.empty() ? std::string("untyped")
                                                       : req.content_type));
    return;
  }

  // Answer later, on this context, whatever thread the element replies from.
  // If the client goes away meanwhile, libsoup finishes the message and the
  // answer is dropped.
  auto gone = std::make_shared<bool>(false);
  g_signal_connect_data(
      msg, "finished",
      G_CALLBACK(+[](SoupServerMessage *, gpointer data) {
        **static_cast<std::shared_ptr<bool> *>(data) = true;
      }),
      new std::shared_ptr<bool>(gone),
      +[](gpointer data, GClosure *) { delete static_cast<std::shared_ptr<bool> *>(data); },
      GConnectFlags(0));
  soup_server_message_pause(msg);
  auto held = gobj::ref(msg);
  const std::string resource_base = "/" + key + (publish ? "/webRTC/publish/" : "/webRTC/play/");
  auto done = [this, held, gone, resource_base](whipwhep::HttpResponse resp) {
    if (*gone) return;
    SoupServerMessage *m = held.get();
    SoupMessageHeaders *h = soup_server_message_get_response_headers(m);
    soup_server_message_set_status(m, resp.status, nullptr);
    if (!resp.body.empty() || !resp.content_type.empty())
      soup_server_message_set_response(
          m, resp.content_type.empty() ? "text/plain" : resp.content_type.c_str(),
          SOUP_MEMORY_COPY, resp.body.data(), resp.body.size());
    for (const auto &kv : resp.headers)
      soup_message_headers_append(h, kv.first.c_str(), kv.second.c_str());
    if (!resp.etag.empty()) soup_message_headers_replace(h, "ETag", resp.etag.c_str());
    if (resp.status == 201 && !resp.session.empty()) {
      // Absolute, so clients that only resolve absolute URLs or paths
      // starting with '/' both work.
      const std::string location = config_.public_url + resource_base + resp.session;
      soup_message_headers_replace(h, "Location", location.c_str());
      add_ice_links(h);
    }
    add_common_headers(m, true);
    soup_server_message_unpause(m);
  };
  if (publish)
    inputs_.publish(key, req, std::move(done));
  else
    inputs_.play(key, req, std::move(done));
}

}  // namespace server
