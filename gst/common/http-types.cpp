#include "http-types.h"

#include <sys/random.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>

namespace whipwhep {

std::string HttpRequest::body_string() const {
  if (!body) return {};
  gsize size = 0;
  const auto *data = static_cast<const char *>(g_bytes_get_data(body.get(), &size));
  return data ? std::string(data, size) : std::string();
}

HttpResponse HttpResponse::text(guint status, std::string reason) {
  HttpResponse r;
  r.status = status;
  r.content_type = "text/plain";
  r.body = std::move(reason);
  if (!r.body.empty() && r.body.back() != '\n') r.body += '\n';
  return r;
}

const std::string *HttpResponse::header(const std::string &name) const {
  for (const auto &h : headers)
    if (g_ascii_strcasecmp(h.first.c_str(), name.c_str()) == 0) return &h.second;
  return nullptr;
}

static void set_opt_string(GstStructure *s, const char *field, const std::string &v) {
  if (!v.empty()) gst_structure_set(s, field, G_TYPE_STRING, v.c_str(), nullptr);
}

static std::string get_string(const GstStructure *s, const char *field) {
  const gchar *v = gst_structure_get_string(s, field);
  return v ? v : "";
}

GstStructure *request_to_structure(const HttpRequest &req) {
  GstStructure *s = gst_structure_new("whipwhep/request", "method", G_TYPE_STRING,
                                      req.method.c_str(), nullptr);
  set_opt_string(s, "session", req.session);
  set_opt_string(s, "content-type", req.content_type);
  set_opt_string(s, "authorization", req.authorization);
  set_opt_string(s, "if-match", req.if_match);
  if (req.body) gst_structure_set(s, "body", G_TYPE_BYTES, req.body.get(), nullptr);
  return s;
}

bool request_from_structure(const GstStructure *s, HttpRequest *out) {
  if (!s || !gst_structure_has_name(s, "whipwhep/request")) return false;
  out->method = get_string(s, "method");
  if (out->method.empty()) return false;
  out->session = get_string(s, "session");
  out->content_type = get_string(s, "content-type");
  out->authorization = get_string(s, "authorization");
  out->if_match = get_string(s, "if-match");
  out->body.reset();
  const GValue *v = gst_structure_get_value(s, "body");
  if (v && G_VALUE_HOLDS(v, G_TYPE_BYTES))
    out->body = gobj::ref(static_cast<GBytes *>(g_value_get_boxed(v)));
  return true;
}

GstStructure *response_to_structure(const HttpResponse &resp) {
  GstStructure *s = gst_structure_new("whipwhep/response", "status", G_TYPE_UINT,
                                      resp.status, nullptr);
  set_opt_string(s, "content-type", resp.content_type);
  if (!resp.body.empty()) gst_structure_set(s, "body", G_TYPE_STRING, resp.body.c_str(), nullptr);
  set_opt_string(s, "session", resp.session);
  set_opt_string(s, "etag", resp.etag);
  if (!resp.headers.empty()) {
    GstStructure *h = gst_structure_new_empty("headers");
    for (const auto &kv : resp.headers)
      gst_structure_set(h, kv.first.c_str(), G_TYPE_STRING, kv.second.c_str(), nullptr);
    gst_structure_set(s, "headers", GST_TYPE_STRUCTURE, h, nullptr);
    gst_structure_free(h);
  }
  return s;
}

HttpResponse response_from_structure(const GstStructure *s) {
  HttpResponse r;
  if (!s || !gst_structure_has_name(s, "whipwhep/response")) {
    return HttpResponse::text(500, "internal error: element gave no response");
  }
  guint status = 500;
  gst_structure_get_uint(s, "status", &status);
  r.status = status;
  r.content_type = get_string(s, "content-type");
  r.body = get_string(s, "body");
  r.session = get_string(s, "session");
  r.etag = get_string(s, "etag");
  const GValue *hv = gst_structure_get_value(s, "headers");
  if (hv && GST_VALUE_HOLDS_STRUCTURE(hv)) {
    const GstStructure *h = gst_value_get_structure(hv);
    gst_structure_foreach(
        h,
        +[](GQuark field, const GValue *value, gpointer data) -> gboolean {
          auto *headers = static_cast<std::vector<std::pair<std::string, std::string>> *>(data);
          if (G_VALUE_HOLDS_STRING(value))
            headers->emplace_back(g_quark_to_string(field), g_value_get_string(value));
          return TRUE;
        },
        &r.headers);
  }
  return r;
}

void reply(GstPromise *promise, const HttpResponse &resp) {
  gst_promise_reply(promise, response_to_structure(resp));
}

namespace {

// Shared between the promise callback and the timeout: whichever fires first
// delivers the response; the other does nothing.
struct PendingRequest {
  std::atomic<bool> done{false};
  ResponseCallback callback;
  gobj::Ref<GMainContext> context;
  GSource *timeout = nullptr;  // owned reference, attached to `context`
  std::mutex lock;

  ~PendingRequest() {
    if (timeout) {
      g_source_destroy(timeout);
      g_source_unref(timeout);
    }
  }
};

struct Delivery {
  std::shared_ptr<PendingRequest> pending;
  HttpResponse response;
};

void deliver(std::shared_ptr<PendingRequest> pending, HttpResponse resp) {
  if (pending->done.exchange(true)) return;
  auto *d = new Delivery{std::move(pending), std::move(resp)};
  GMainContext *ctx = d->pending->context.get();
  g_main_context_invoke_full(
      ctx, G_PRIORITY_DEFAULT,
      +[](gpointer data) -> gboolean {
        auto *d = static_cast<Delivery *>(data);
        {
          std::lock_guard<std::mutex> l(d->pending->lock);
          if (d->pending->timeout) {
            g_source_destroy(d->pending->timeout);
            g_source_unref(d->pending->timeout);
            d->pending->timeout = nullptr;
          }
        }
        ResponseCallback cb = std::move(d->pending->callback);
        if (cb) cb(std::move(d->response));
        return G_SOURCE_REMOVE;
      },
      d, +[](gpointer data) { delete static_cast<Delivery *>(data); });
}

}  // namespace

void submit_request(GstElement *element, const HttpRequest &req, GMainContext *reply_context,
                    ResponseCallback done, guint timeout_ms) {
  auto pending = std::make_shared<PendingRequest>();
  pending->callback = std::move(done);
  GMainContext *ctx = reply_context ? reply_context : g_main_context_get_thread_default();
  if (!ctx) ctx = g_main_context_default();
  pending->context = gobj::ref(ctx);

  if (!element || !g_signal_lookup("handle-request", G_OBJECT_TYPE(element))) {
    deliver(pending, HttpResponse::text(500, "internal error: element cannot handle requests"));
    return;
  }

  {
    std::lock_guard<std::mutex> l(pending->lock);
    pending->timeout = g_timeout_source_new(timeout_ms);
    auto *weak = new std::weak_ptr<PendingRequest>(pending);
    g_source_set_callback(
        pending->timeout,
        +[](gpointer data) -> gboolean {
          auto *w = static_cast<std::weak_ptr<PendingRequest> *>(data);
          if (auto p = w->lock()) {
            std::lock_guard<std::mutex> l(p->lock);
            // The source is being dispatched: forget it so nobody destroys it twice.
            if (p->timeout) {
              g_source_unref(p->timeout);
              p->timeout = nullptr;
            }
          }
          if (auto p = w->lock())
            deliver(p, HttpResponse::text(504, "timed out waiting for the media session"));
          return G_SOURCE_REMOVE;
        },
        weak, +[](gpointer data) { delete static_cast<std::weak_ptr<PendingRequest> *>(data); });
    g_source_attach(pending->timeout, ctx);
  }

  auto *holder = new std::shared_ptr<PendingRequest>(pending);
  GstPromise *promise = gst_promise_new_with_change_func(
      +[](GstPromise *promise, gpointer data) {
        auto pending = *static_cast<std::shared_ptr<PendingRequest> *>(data);
        HttpResponse resp;
        if (gst_promise_wait(promise) == GST_PROMISE_RESULT_REPLIED)
          resp = response_from_structure(gst_promise_get_reply(promise));
        else
          resp = HttpResponse::text(500, "internal error: request was not answered");
        deliver(pending, std::move(resp));
      },
      holder, +[](gpointer data) { delete static_cast<std::shared_ptr<PendingRequest> *>(data); });

  gobj::Unique<GstStructure> s(request_to_structure(req));
  g_signal_emit_by_name(element, "handle-request", s.get(), promise);
  gst_promise_unref(promise);
}

std::string random_id_hex128() {
  // From the kernel CSPRNG, not g_random_int(): GLib's generator is a
  // Mersenne Twister whose state can be rebuilt from 624 outputs, i.e. from
  // the ids of ~160 WHEP sessions anyone may open, which would predict every
  // later publish secret and session id.
  unsigned char bytes[16];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    const ssize_t n = getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n < 0 && errno == EINTR) continue;
    // No entropy source: never hand out a guessable credential.
    if (n <= 0) g_error("getrandom() failed: %s", g_strerror(errno));
    got += static_cast<size_t>(n);
  }
  static const char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(32);
  for (unsigned char b : bytes) {
    out += hex[b >> 4];
    out += hex[b & 0xf];
  }
  return out;
}

bool bearer_matches(const std::string &authorization, const std::string &token) {
  static const char prefix[] = "Bearer ";
  const size_t plen = sizeof(prefix) - 1;
  if (authorization.size() < plen || g_ascii_strncasecmp(authorization.c_str(), prefix, plen) != 0)
    return false;
  const std::string given = authorization.substr(plen);
  // Constant time in the token's content: always walk the expected token.
  unsigned char diff = given.size() == token.size() ? 0 : 1;
  for (size_t i = 0; i < token.size(); i++) {
    unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff |= g ^ static_cast<unsigned char>(token[i]);
  }
  return diff == 0 && !token.empty();
}

std::string normalize_media_type(const char *content_type) {
  if (!content_type) return {};
  std::string s(content_type);
  auto semi = s.find(';');
  if (semi != std::string::npos) s.resize(semi);
  while (!s.empty() && g_ascii_isspace(s.back())) s.pop_back();
  size_t start = 0;
  while (start < s.size() && g_ascii_isspace(s[start])) start++;
  s = s.substr(start);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return g_ascii_tolower(c); });
  return s;
}

}  // namespace whipwhep
