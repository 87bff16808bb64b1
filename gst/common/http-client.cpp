#include "http-client.h"

#include <gst/gst.h>
#include <libsoup/soup.h>

#include "config.h"

#include <condition_variable>
#include <mutex>
#include <set>

#include "client-protocol.h"
#include "gobj.h"
#include "http-types.h"
#include "ice.h"
#include "signalling-context.h"

GST_DEBUG_CATEGORY_STATIC(http_client_debug);
#define GST_CAT_DEFAULT http_client_debug

namespace gobj {
template <> struct Deleter<GCancellable> {
  void operator()(GCancellable *p) const { g_object_unref(p); }
};
}  // namespace gobj

namespace whipwhep {

std::string HttpResult::describe(const std::string &method) const {
  if (status == 0) return method + " " + url + ": " + error;
  return describe_http_failure(method, url, status, reason);
}

struct HttpClient::Core : std::enable_shared_from_this<HttpClient::Core> {
  std::string token;
  guint timeout_s = 10;
  SoupSession *session = nullptr;  // signalling thread only
  // Callbacks run under this lock so the destructor can wait for a running
  // one and then forbid the rest.
  std::recursive_mutex callback_lock;
  bool alive = true;
  std::set<GCancellable *> in_flight;  // signalling thread only

  struct Request {
    std::string method;
    std::string url;
    std::string content_type;
    gobj::Ref<GBytes> body;
    std::string if_match;
    gint64 deadline = 0;  // monotonic µs
    int redirects_left = kMaxRedirects;
    HttpResultCallback done;
  };

  SoupSession *get_session() {
    if (!session) {
      session = soup_session_new_with_options("user-agent", "whipwhep/" VERSION,
                                              "timeout", timeout_s, "idle-timeout", timeout_s,
                                              nullptr);
    }
    return session;
  }

  void finish(const std::shared_ptr<Request> &req, HttpResult result) {
    std::lock_guard<std::recursive_mutex> l(callback_lock);
    if (!alive) return;
    auto done = std::move(req->done);
    if (done) done(std::move(result));
  }

  // Signalling thread.
  void send(std::shared_ptr<Request> req) {
    HttpResult fail;
    fail.url = req->url;
    SoupMessage *raw = is_http_url(req->url) ? soup_message_new(req->method.c_str(), req->url.c_str())
                                             : nullptr;
    if (!raw) {
      fail.error = "not a valid http(s) URL";
      return finish(req, std::move(fail));
    }
    gint64 now = g_get_monotonic_time();
    if (now >= req->deadline) {
      fail.error = "no answer within " + std::to_string(timeout_s) + " s";
      return finish(req, std::move(fail));
    }
    auto msg = gobj::adopt(raw);
    // Redirects are followed by hand: libsoup would drop the body or the
    // Authorization header on some of them, RFC 9725 says keep both.
    soup_message_add_flags(msg.get(), SOUP_MESSAGE_NO_REDIRECT);
    SoupMessageHeaders *h = soup_message_get_request_headers(msg.get());
    bool auth = !token.empty();
    if (auth) soup_message_headers_replace(h, "Authorization", ("Bearer " + token).c_str());
    if (!req->if_match.empty()) soup_message_headers_replace(h, "If-Match", req->if_match.c_str());
    if (req->body)
      soup_message_set_request_body_from_bytes(msg.get(), req->content_type.c_str(), req->body.get());

    GCancellable *cancel = g_cancellable_new();
    in_flight.insert(cancel);
    struct Op {
      std::shared_ptr<Core> core;
      std::shared_ptr<Request> req;
      gobj::Ref<SoupMessage> msg;
      GCancellable *cancel;
      GSource *timer;
      bool timed_out = false;
      bool auth;
    };
    auto *op = new Op{shared_from_this(), req, msg, cancel, nullptr, false, auth};
    guint remaining_ms = guint((req->deadline - now) / 1000) + 1;
    op->timer = g_timeout_source_new(remaining_ms);
    g_source_set_callback(
        op->timer,
        +[](gpointer data) -> gboolean {
          auto *op = static_cast<Op *>(data);
          op->timed_out = true;
          g_cancellable_cancel(op->cancel);
          return G_SOURCE_REMOVE;
        },
        op, nullptr);
    g_source_attach(op->timer, g_main_context_get_thread_default());
    GST_DEBUG("%s %s", req->method.c_str(), req->url.c_str());
    soup_session_send_and_read_async(
        get_session(), msg.get(), G_PRIORITY_DEFAULT, cancel,
        +[](GObject *source, GAsyncResult *res, gpointer data) {
          std::unique_ptr<Op> op(static_cast<Op *>(data));
          g_source_destroy(op->timer);
          g_source_unref(op->timer);
          op->core->in_flight.erase(op->cancel);
          gobj::Unique<GCancellable> cancel_holder(op->cancel);
          gobj::Unique<GError> err;
          gobj::Ref<GBytes> bytes = gobj::adopt(
              soup_session_send_and_read_finish(SOUP_SESSION(source), res, gobj::out(err)));
          op->core->on_answer(op->req, op->msg.get(), bytes.get(), err.get(), op->timed_out,
                              op->auth);
        },
        op);
  }

  void on_answer(const std::shared_ptr<Request> &req, SoupMessage *msg, GBytes *bytes,
                 GError *err, bool timed_out, bool auth) {
    HttpResult r;
    r.url = req->url;
    r.authorization_sent = auth;
    if (err) {
      if (timed_out)
        r.error = "no answer within " + std::to_string(timeout_s) + " s";
      else if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        r.error = "request cancelled";
      else
        r.error = err->message;
      GST_DEBUG("%s %s failed: %s", req->method.c_str(), req->url.c_str(), r.error.c_str());
      return finish(req, std::move(r));
    }
    r.status = soup_message_get_status(msg);
    SoupMessageHeaders *h = soup_message_get_response_headers(msg);
    if (bytes) {
      gsize len = 0;
      const char *data = static_cast<const char *>(g_bytes_get_data(bytes, &len));
      if (data) r.body.assign(data, len);
    }
    r.content_type = normalize_media_type(soup_message_headers_get_content_type(h, nullptr));
    const char *loc = soup_message_headers_get_one(h, "Location");
    if (loc) r.location = resolve_location(req->url, loc);
    GST_DEBUG("%s %s -> %u", req->method.c_str(), req->url.c_str(), r.status);

    if (is_method_preserving_redirect(r.status) && !r.location.empty()) {
      if (req->redirects_left <= 0) {
        r.reason = "too many redirects";
        return finish(req, std::move(r));
      }
      req->redirects_left--;
      req->url = r.location;
      return send(req);
    }
    r.reason = server_reason(r.status, gobj::str_or(soup_message_get_reason_phrase(msg)), r.body);
    const char *etag = soup_message_headers_get_one(h, "ETag");
    if (etag) r.etag = etag;
    // Delta-seconds only (what WHIP/WHEP servers send on 503/429/409).
    if (const char *ra = soup_message_headers_get_one(h, "Retry-After")) {
      g_autofree gchar *trimmed = g_strstrip(g_strdup(ra));
      guint64 v = 0;
      if (g_ascii_string_to_unsigned(trimmed, 10, 0, 86400, &v, nullptr)) r.retry_after_s = guint(v);
    }
    // Link may come as several header lines; libsoup joins them with ", ",
    // which parse_ice_server_links handles (it splits outside quotes).
    const char *links = soup_message_headers_get_list(h, "Link");
    if (links) r.ice_servers = parse_ice_server_links(links);
    finish(req, std::move(r));
  }

  void start(std::shared_ptr<Request> req) {
    req->deadline = g_get_monotonic_time() + gint64(timeout_s) * G_USEC_PER_SEC;
    auto self = shared_from_this();
    run_on_signalling_thread([self, req]() { self->send(req); });
  }
};

HttpClient::HttpClient(std::string auth_token, guint timeout_s) : core_(std::make_shared<Core>()) {
  static gsize init = 0;
  if (g_once_init_enter(&init)) {
    GST_DEBUG_CATEGORY_INIT(http_client_debug, "whipwhep-http-client", 0,
                            "WHIP/WHEP client signalling");
    g_once_init_leave(&init, 1);
  }
  core_->token = std::move(auth_token);
  core_->timeout_s = timeout_s ? timeout_s : 1;
}

HttpClient::~HttpClient() {
  {
    std::lock_guard<std::recursive_mutex> l(core_->callback_lock);
    core_->alive = false;
  }
  // Cancel what is in flight and drop the session on its own thread; the
  // pending completions keep Core alive until they have run.
  auto core = core_;
  run_on_signalling_thread([core]() {
    for (GCancellable *c : core->in_flight) g_cancellable_cancel(c);
    if (core->session) {
      soup_session_abort(core->session);
      g_object_unref(core->session);
      core->session = nullptr;
    }
  });
}

guint HttpClient::timeout_s() const { return core_->timeout_s; }

void HttpClient::post_sdp(const std::string &url, const std::string &sdp, HttpResultCallback done) {
  auto req = std::make_shared<Core::Request>();
  req->method = "POST";
  req->url = url;
  req->content_type = "application/sdp";
  req->body = gobj::adopt(g_bytes_new(sdp.data(), sdp.size()));
  req->done = std::move(done);
  core_->start(req);
}

void HttpClient::patch_sdpfrag(const std::string &url, const std::string &fragment,
                               const std::string &etag, HttpResultCallback done) {
  auto req = std::make_shared<Core::Request>();
  req->method = "PATCH";
  req->url = url;
  req->content_type = "application/trickle-ice-sdpfrag";
  req->body = gobj::adopt(g_bytes_new(fragment.data(), fragment.size()));
  req->if_match = etag;
  req->done = std::move(done);
  core_->start(req);
}

void HttpClient::delete_resource(const std::string &url, HttpResultCallback done) {
  auto req = std::make_shared<Core::Request>();
  req->method = "DELETE";
  req->url = url;
  req->done = std::move(done);
  core_->start(req);
}

HttpResult HttpClient::delete_resource_sync(const std::string &url) {
  struct Sync {
    std::mutex m;
    std::condition_variable cv;
    bool finished = false;
    HttpResult result;
  };
  auto sync = std::make_shared<Sync>();
  delete_resource(url, [sync](HttpResult r) {
    std::lock_guard<std::mutex> l(sync->m);
    sync->result = std::move(r);
    sync->finished = true;
    sync->cv.notify_all();
  });
  std::unique_lock<std::mutex> l(sync->m);
  // The request itself is bounded by the timeout; the margin covers a busy
  // signalling thread.
  if (!sync->cv.wait_for(l, std::chrono::milliseconds(core_->timeout_s * 1000 + 500),
                         [&] { return sync->finished; })) {
    HttpResult r;
    r.url = url;
    r.error = "no answer within " + std::to_string(core_->timeout_s) + " s";
    return r;
  }
  return sync->result;
}

}  // namespace whipwhep
