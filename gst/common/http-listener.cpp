#include "http-listener.h"

#include <gio/gio.h>
#include <libsoup/soup.h>

#include <condition_variable>
#include <mutex>

#include "gobj.h"
#include "http-types.h"

GST_DEBUG_CATEGORY_STATIC(listener_debug);
#define GST_CAT_DEFAULT listener_debug

namespace whipwhep {

const char *const kProtocolVersion = "RFC9725, draft-ietf-wish-whep-02";
const char *const kExposeHeaders = "Location, Link, ETag, Accept-Patch, Retry-After";
const char *const kAllowHeaders = "Authorization, Content-Type, If-Match";
const char *const kAllowMethods = "POST, PATCH, DELETE, OPTIONS";

struct HttpListener::Impl {
  GstElement *element = nullptr;  // not owned: the element owns us
  Options opts;
  GMainContext *context = nullptr;
  GMainLoop *loop = nullptr;
  SoupServer *server = nullptr;
  GThread *thread = nullptr;
  guint bound_port = 0;

  std::mutex m;
  std::condition_variable cv;
  bool started = false;
  std::string start_error;

  static gpointer thread_main(gpointer data);
  void handle(SoupServerMessage *msg, const char *path);
  void respond(SoupServerMessage *msg, const HttpResponse &resp);
};

static void add_common_headers(SoupServerMessage *msg) {
  SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
  soup_message_headers_replace(h, "Access-Control-Allow-Origin", "*");
  soup_message_headers_replace(h, "Access-Control-Expose-Headers", kExposeHeaders);
  soup_message_headers_replace(h, "protocol-version", kProtocolVersion);
}

void HttpListener::Impl::respond(SoupServerMessage *msg, const HttpResponse &resp) {
  add_common_headers(msg);
  SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
  if (resp.status == 201 && !resp.session.empty()) {
    std::string location = opts.path + "/" + resp.session;
    soup_message_headers_replace(h, "Location", location.c_str());
  }
  if (!resp.etag.empty()) soup_message_headers_replace(h, "ETag", resp.etag.c_str());
  for (const auto &kv : resp.headers)
    soup_message_headers_append(h, kv.first.c_str(), kv.second.c_str());
  soup_server_message_set_status(msg, resp.status, nullptr);
  if (!resp.body.empty() || !resp.content_type.empty()) {
    soup_server_message_set_response(msg, resp.content_type.empty() ? "text/plain"
                                                                    : resp.content_type.c_str(),
                                     SOUP_MEMORY_COPY, resp.body.data(), resp.body.size());
  }
}

void close_connections_after_response(SoupServer *server) {
  g_signal_connect(server, "request-started",
                   G_CALLBACK(+[](SoupServer *, SoupServerMessage *msg, gpointer) {
                     soup_message_headers_replace(soup_server_message_get_response_headers(msg),
                                                  "Connection", "close");
                   }),
                   nullptr);
}

void release_leaked_accept_refs(SoupServer *server) {
  if (soup_get_major_version() != 3 || soup_get_minor_version() != 2) return;
  g_signal_connect(
      server, "request-started", G_CALLBACK(+[](SoupServer *, SoupServerMessage *msg, gpointer) {
        static const GQuark released = g_quark_from_static_string("whipwhep-accept-ref-released");
        GSocket *sock = soup_server_message_get_socket(msg);
        if (!sock || g_object_get_qdata(G_OBJECT(sock), released)) return;
        g_object_set_qdata(G_OBJECT(sock), released, GINT_TO_POINTER(1));
        // The connection's reference plus the leaked one; anything less and
        // this libsoup does not leak it (the reference is not ours to drop).
        if (g_atomic_int_get(&G_OBJECT(sock)->ref_count) >= 2) g_object_unref(sock);
      }),
      nullptr);
}

void HttpListener::Impl::handle(SoupServerMessage *msg, const char *path) {
  const std::string method = soup_server_message_get_method(msg);
  std::string p = path ? path : "";
  std::string session;
  if (p == opts.path) {
    session.clear();
  } else if (p.rfind(opts.path + "/", 0) == 0) {
    session = p.substr(opts.path.size() + 1);
    if (session.empty() || session.find('/') != std::string::npos) {
      respond(msg, HttpResponse::text(404, "no such session"));
      return;
    }
  } else {
    respond(msg, HttpResponse::text(404, "not found: the endpoint is " + opts.path));
    return;
  }

  if (method == "OPTIONS") {
    HttpResponse r;
    r.status = 204;
    r.headers = {{"Access-Control-Allow-Methods", kAllowMethods},
                 {"Access-Control-Allow-Headers", kAllowHeaders},
                 {"Access-Control-Max-Age", "86400"},
                 {"Accept-Post", "application/sdp"}};
    if (!session.empty()) r.headers.push_back({"Accept-Patch", "application/trickle-ice-sdpfrag"});
    respond(msg, r);
    return;
  }
  const bool allowed = session.empty() ? method == "POST"
                                       : (method == "DELETE" || method == "PATCH");
  if (!allowed) {
    HttpResponse r = HttpResponse::text(405, "method " + method + " not allowed here");
    r.headers.push_back({"Allow", session.empty() ? "POST, OPTIONS" : "PATCH, DELETE, OPTIONS"});
    respond(msg, r);
    return;
  }

  SoupMessageHeaders *rh = soup_server_message_get_request_headers(msg);
  HttpRequest req;
  req.method = method;
  req.session = session;
  req.content_type = normalize_media_type(soup_message_headers_get_one(rh, "Content-Type"));
  req.authorization = gobj::str_or(soup_message_headers_get_one(rh, "Authorization"));
  req.if_match = gobj::str_or(soup_message_headers_get_one(rh, "If-Match"));
  SoupMessageBody *body = soup_server_message_get_request_body(msg);
  if (body && body->length > 0) {
    if (static_cast<gsize>(body->length) > opts.max_body) {
      respond(msg, HttpResponse::text(413, "request body too large"));
      return;
    }
    req.body = gobj::adopt(soup_message_body_flatten(body));
  }

  // Answer later, on this context, whatever thread the element replies from.
  soup_server_message_pause(msg);
  auto held = gobj::ref(msg);
  submit_request(element, req, context, [this, held](HttpResponse resp) {
    respond(held.get(), resp);
    soup_server_message_unpause(held.get());
  });
}

gpointer HttpListener::Impl::thread_main(gpointer data) {
  auto *self = static_cast<Impl *>(data);
  g_main_context_push_thread_default(self->context);
  self->server = soup_server_new("server-header", "whipwhep ", nullptr);
  close_connections_after_response(self->server);
  release_leaked_accept_refs(self->server);

  // Reject oversized bodies from the headers alone, before reading them.
  soup_server_add_early_handler(
      self->server, nullptr,
      +[](SoupServer *, SoupServerMessage *msg, const char *, GHashTable *, gpointer data) {
        auto *self = static_cast<Impl *>(data);
        SoupMessageHeaders *rh = soup_server_message_get_request_headers(msg);
        goffset len = soup_message_headers_get_content_length(rh);
        if (len > 0 && static_cast<gsize>(len) > self->opts.max_body) {
          self->respond(msg, HttpResponse::text(413, "request body too large"));
        }
      },
      self, nullptr);
  soup_server_add_handler(
      self->server, nullptr,
      +[](SoupServer *, SoupServerMessage *msg, const char *path, GHashTable *, gpointer data) {
        static_cast<Impl *>(data)->handle(msg, path);
      },
      self, nullptr);

  gobj::Unique<GError> err;
  gobj::Ref<GSocketAddress> addr = gobj::adopt(
      g_inet_socket_address_new_from_string(self->opts.address.c_str(), self->opts.port));
  bool ok = false;
  if (!addr) {
    self->start_error = "invalid listen address '" + self->opts.address + "'";
  } else if (!soup_server_listen(self->server, addr.get(), SoupServerListenOptions(0),
                                 gobj::out(err))) {
    self->start_error = std::string("cannot listen: ") + (err ? err->message : "unknown error");
  } else {
    GSList *uris = soup_server_get_uris(self->server);
    if (uris) self->bound_port = g_uri_get_port(static_cast<GUri *>(uris->data));
    g_slist_free_full(uris, reinterpret_cast<GDestroyNotify>(g_uri_unref));
    ok = true;
  }
  {
    std::lock_guard<std::mutex> l(self->m);
    self->started = true;
    self->cv.notify_all();
  }
  if (ok) g_main_loop_run(self->loop);

  soup_server_disconnect(self->server);
  g_object_unref(self->server);
  self->server = nullptr;
  // Deliver what is still queued (responses to paused messages) before leaving.
  while (g_main_context_iteration(self->context, FALSE)) {
  }
  g_main_context_pop_thread_default(self->context);
  return nullptr;
}

std::unique_ptr<HttpListener> HttpListener::start(GstElement *element, const Options &opts,
                                                  std::string *error) {
  static gsize init = 0;
  if (g_once_init_enter(&init)) {
    GST_DEBUG_CATEGORY_INIT(listener_debug, "whipwhep-listener", 0, "standalone HTTP listener");
    g_once_init_leave(&init, 1);
  }
  std::unique_ptr<HttpListener> l(new HttpListener());
  l->impl_ = std::make_unique<Impl>();
  Impl *impl = l->impl_.get();
  impl->element = element;
  impl->opts = opts;
  impl->context = g_main_context_new();
  impl->loop = g_main_loop_new(impl->context, FALSE);
  impl->thread = g_thread_new("whipwhep-http", &Impl::thread_main, impl);
  std::unique_lock<std::mutex> lock(impl->m);
  impl->cv.wait(lock, [impl] { return impl->started; });
  if (!impl->start_error.empty()) {
    if (error) *error = impl->start_error;
    lock.unlock();
    return nullptr;  // destructor joins the thread (it already left its loop)
  }
  GST_INFO_OBJECT(element, "listening on http://%s:%u%s", opts.address.c_str(), impl->bound_port,
                  opts.path.c_str());
  return l;
}

guint HttpListener::port() const { return impl_->bound_port; }

HttpListener::~HttpListener() {
  if (!impl_) return;
  // Quit from inside the loop: a quit before g_main_loop_run() started
  // would be forgotten and the join would hang.
  g_main_context_invoke(
      impl_->context,
      +[](gpointer loop) -> gboolean {
        g_main_loop_quit(static_cast<GMainLoop *>(loop));
        return G_SOURCE_REMOVE;
      },
      impl_->loop);
  if (impl_->thread) g_thread_join(impl_->thread);
  g_main_loop_unref(impl_->loop);
  g_main_context_unref(impl_->context);
}

}  // namespace whipwhep
