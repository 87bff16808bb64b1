#include "client-session.h"

#include <gst/webrtc/webrtc.h>

#include <algorithm>

#include "client-protocol.h"
#include "ice.h"
#include "signalling-context.h"
#include "webrtc-negotiation.h"

GST_DEBUG_CATEGORY_STATIC(client_session_debug);
#define GST_CAT_DEFAULT client_session_debug

namespace whipwhep {

namespace {

using WeakSession = std::weak_ptr<ClientSession>;

GstResourceError error_code_for_status(guint status) {
  if (status == 401 || status == 403) return GST_RESOURCE_ERROR_NOT_AUTHORIZED;
  if (status == 404) return GST_RESOURCE_ERROR_NOT_FOUND;
  if (status == 0) return GST_RESOURCE_ERROR_OPEN_READ_WRITE;
  return GST_RESOURCE_ERROR_FAILED;
}

void post_error(GstElement *owner, GQuark domain, gint code, const std::string &message,
                const std::string &debug, guint http_status, const std::string &url) {
  gobj::Unique<GError> err(g_error_new_literal(domain, code, message.c_str()));
  GstStructure *details = gst_structure_new_empty("details");
  if (http_status) gst_structure_set(details, "http-status-code", G_TYPE_UINT, http_status, nullptr);
  if (!url.empty()) gst_structure_set(details, "url", G_TYPE_STRING, url.c_str(), nullptr);
  GstMessage *msg =
      gst_message_new_error_with_details(GST_OBJECT(owner), err.get(), debug.c_str(), details);
  gst_element_post_message(owner, msg);
}

void post_warning(GstElement *owner, const std::string &message) {
  gobj::Unique<GError> err(
      g_error_new_literal(GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_BUSY, message.c_str()));
  gst_element_post_message(owner, gst_message_new_warning(GST_OBJECT(owner), err.get(), nullptr));
}

}  // namespace

GParamSpec *retry_timeout_param_spec(const char *example) {
  g_autofree gchar *blurb = g_strdup_printf(
      "Seconds to keep re-POSTing the offer while the server answers 503 or 429, or 409 with "
      "Retry-After (%s), waiting what Retry-After says (2 s without it); each retry posts a "
      "warning. 0 = the first such answer is an error",
      example);
  // Property blurbs must outlive the class: intern the text.
  return g_param_spec_uint("retry-timeout", "Retry timeout", g_intern_string(blurb), 0, 86400, 0,
                           GParamFlags(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
}

std::shared_ptr<ClientSession> ClientSession::create(GstElement *owner, GstElement *webrtcbin,
                                                     const ClientConfig &config,
                                                     std::string *error) {
  static gsize init = 0;
  if (g_once_init_enter(&init)) {
    GST_DEBUG_CATEGORY_INIT(client_session_debug, "whipwhep-client", 0,
                            "WHIP/WHEP client session");
    g_once_init_leave(&init, 1);
  }
  if (config.endpoint.empty()) {
    *error = "no " + config.protocol + " endpoint set";
    return nullptr;
  }
  if (!is_http_url(config.endpoint)) {
    *error = "the " + config.protocol + " endpoint '" + config.endpoint + "' is not an http(s) URL";
    return nullptr;
  }
  IceSettings ice;
  ice.local_addresses = split_list(config.ice_addresses);
  ice.stun_server = config.stun_server;
  if (!config.turn_server.empty()) ice.turn_servers.push_back(config.turn_server);
  if (!configure_ice(webrtcbin, ice)) {
    *error = "invalid ICE settings (ice-addresses '" + config.ice_addresses + "' or TURN server)";
    return nullptr;
  }

  std::shared_ptr<ClientSession> s(new ClientSession());
  g_weak_ref_init(&s->owner_, owner);
  s->webrtcbin_ = gobj::ref(webrtcbin);
  s->config_ = config;
  s->http_ = std::make_unique<HttpClient>(config.auth_token, config.timeout_s);

  // The handlers hold a weak pointer (freed with the handler), so a
  // notification racing with teardown finds no session instead of a dangling
  // one.
  auto connect = [&](const char *signal) {
    return g_signal_connect_data(
        webrtcbin, signal, G_CALLBACK(+[](GstElement *, GParamSpec *, gpointer data) {
          if (auto self = static_cast<WeakSession *>(data)->lock()) self->on_connection_state();
        }),
        new WeakSession(s), +[](gpointer data, GClosure *) { delete static_cast<WeakSession *>(data); },
        GConnectFlags(0));
  };
  s->state_handler_ = connect("notify::connection-state");
  s->ice_handler_ = connect("notify::ice-connection-state");
  return s;
}

ClientSession::~ClientSession() {
  if (rtcp_handler_ && rtp_session_) g_signal_handler_disconnect(rtp_session_.get(), rtcp_handler_);
  if (state_handler_) g_signal_handler_disconnect(webrtcbin_.get(), state_handler_);
  if (ice_handler_) g_signal_handler_disconnect(webrtcbin_.get(), ice_handler_);
  g_weak_ref_clear(&owner_);
}

std::string ClientSession::resource_url() const {
  std::lock_guard<std::mutex> l(lock_);
  return resource_url_;
}

void ClientSession::negotiate() {
  {
    std::lock_guard<std::mutex> l(lock_);
    if (negotiating_ || closed_) return;
    negotiating_ = true;
  }
  auto self = shared_from_this();
  GST_DEBUG("creating %s offer", config_.protocol.c_str());
  // Gathering is bounded by the same timeout as the HTTP exchange.
  make_offer(webrtcbin_.get(), [self](bool ok, std::string sdp) { self->on_offer(ok, std::move(sdp)); },
             std::min<guint>(config_.timeout_s * 1000, 3000));
}

void ClientSession::on_offer(bool ok, std::string sdp) {
  if (closed_) return;
  if (!ok) {
    fail(GST_LIBRARY_ERROR, GST_LIBRARY_ERROR_FAILED, "Could not create the WebRTC offer: " + sdp, sdp);
    return;
  }
  GST_LOG("offer:\n%s", sdp.c_str());
  offer_sdp_ = std::move(sdp);
  first_post_us_ = g_get_monotonic_time();
  post_offer();
}

void ClientSession::post_offer() {
  auto self = shared_from_this();
  http_->post_sdp(config_.endpoint, offer_sdp_,
                  [self](HttpResult r) { self->on_post_answer(std::move(r)); });
}

bool ClientSession::retry_later(const HttpResult &r) {
  if (config_.retry_timeout_s == 0) return false;
  const bool come_back = r.status == 503 || r.status == 429 || (r.status == 409 && r.retry_after_s);
  if (!come_back) return false;
  // The same offer again: its ICE credentials and candidates are still
  // ours, and no answer was applied.
  const guint delay_s = std::max(1u, r.retry_after_s ? r.retry_after_s : 2u);
  const gint64 at = g_get_monotonic_time() + gint64(delay_s) * G_USEC_PER_SEC;
  if (at - first_post_us_ > gint64(config_.retry_timeout_s) * G_USEC_PER_SEC) return false;
  retries_++;
  gobj::Ref<GstElement> owner = gobj::adopt(static_cast<GstElement *>(g_weak_ref_get(&owner_)));
  if (owner)
    post_warning(owner.get(), config_.protocol + " server asked to come back later: " +
                                  r.describe("POST") + "; retrying in " +
                                  std::to_string(delay_s) + " s");
  after_ms(delay_s * 1000, [](ClientSession &self) {
    if (!self.closed_ && !self.failed_) self.post_offer();
  });
  return true;
}

void ClientSession::after_ms(guint ms, std::function<void(ClientSession &)> fn) {
  struct Later {
    WeakSession session;
    std::function<void(ClientSession &)> fn;
  };
  gobj::Ref<GSource> timer = gobj::adopt(g_timeout_source_new(ms));
  g_source_set_callback(
      timer.get(),
      +[](gpointer data) -> gboolean {
        auto *later = static_cast<Later *>(data);
        if (auto self = later->session.lock()) later->fn(*self);
        return G_SOURCE_REMOVE;
      },
      new Later{shared_from_this(), std::move(fn)},
      +[](gpointer data) { delete static_cast<Later *>(data); });
  g_source_attach(timer.get(), signalling_context());
}

void ClientSession::on_post_answer(HttpResult r) {
  if (closed_) return;
  const std::string &proto = config_.protocol;
  if (r.status == 0) {
    fail(GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ_WRITE,
         proto + " server did not answer: " + r.describe("POST"), r.describe("POST"));
    return;
  }
  if (!r.ok()) {
    if (retry_later(r)) return;
    std::string message = proto + " server refused the offer: " + r.describe("POST");
    if (retries_)
      message += " (still, after " + std::to_string(retries_) + " retries in " +
                 std::to_string((g_get_monotonic_time() - first_post_us_) / G_USEC_PER_SEC) +
                 " s; retry-timeout " + std::to_string(config_.retry_timeout_s) + " s)";
    fail(GST_RESOURCE_ERROR, error_code_for_status(r.status), message, r.body, r.status);
    return;
  }
  if (r.location.empty()) {
    fail(GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_FAILED,
         proto + " server answered HTTP " + std::to_string(r.status) +
             " without a Location header: no session resource to end later (" + r.url + ")",
         r.body, r.status);
    return;
  }
  {
    std::lock_guard<std::mutex> l(lock_);
    resource_url_ = r.location;
    etag_ = r.etag;
  }
  std::string why;
  GstSDPMessage *answer = parse_sdp(r.body, &why);
  if (!answer) {
    fail(GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_FAILED,
         proto + " server sent an unusable answer (HTTP " + std::to_string(r.status) + "): " + why,
         r.body, r.status);
    return;
  }
  // ICE servers from Link headers: webrtcbin has already gathered for this
  // offer (we offer after gathering), so they only serve later ICE
  // restarts; documented on the use-link-headers property.
  if (config_.use_link_headers) {
    for (const auto &url : r.ice_servers) {
      if (g_str_has_prefix(url.c_str(), "stun")) {
        g_object_set(webrtcbin_.get(), "stun-server", url.c_str(), nullptr);
      } else {
        gboolean added = FALSE;
        g_signal_emit_by_name(webrtcbin_.get(), "add-turn-server", url.c_str(), &added);
      }
    }
  }
  auto self = shared_from_this();
  guint status = r.status;
  apply_answer(webrtcbin_.get(), answer, [self, status](bool ok, std::string err) {
    if (!ok) {
      self->fail(GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_FAILED,
                 self->config_.protocol + " server's answer was rejected by webrtcbin: " + err, err,
                 status);
      return;
    }
    self->start_connect_timer();
  });
}

void ClientSession::start_connect_timer() {
  // ICE + DTLS must complete within the timeout: libnice alone would take
  // much longer to give up on an unreachable peer.
  after_ms(config_.timeout_s * 1000, [](ClientSession &self) {
    if (!self.connected_ && !self.closed_)
      self.fail(GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ_WRITE,
                "WebRTC connection to the " + self.config_.protocol +
                    " server not established within " + std::to_string(self.config_.timeout_s) +
                    " s (ICE/DTLS)",
                "");
  });
}

void ClientSession::on_connection_state() {
  if (closed_) return;
  GstWebRTCPeerConnectionState pc;
  GstWebRTCICEConnectionState ice;
  g_object_get(webrtcbin_.get(), "connection-state", &pc, "ice-connection-state", &ice, nullptr);
  GST_DEBUG("connection-state %d ice-connection-state %d", pc, ice);
  if (pc == GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED) {
    connected_ = true;
    if (!watching_rtcp_.exchange(true)) {
      // Hop off webrtcbin's thread: watch_rtcp() iterates its children.
      auto weak = new WeakSession(shared_from_this());
      g_main_context_invoke_full(
          signalling_context(), G_PRIORITY_DEFAULT,
          +[](gpointer data) -> gboolean {
            if (auto self = static_cast<WeakSession *>(data)->lock()) self->watch_rtcp();
            return G_SOURCE_REMOVE;
          },
          weak, +[](gpointer data) { delete static_cast<WeakSession *>(data); });
    }
  }
  if (ice == GST_WEBRTC_ICE_CONNECTION_STATE_FAILED)
    fail(GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ_WRITE,
         "ICE failed: no route to the " + config_.protocol + " server's media address", "");
  else if (pc == GST_WEBRTC_PEER_CONNECTION_STATE_FAILED)
    fail(GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ_WRITE,
         "WebRTC connection to the " + config_.protocol + " server failed (ICE or DTLS)", "");
}

void ClientSession::watch_rtcp() {
  if (closed_ || config_.rtcp_timeout_s == 0) return;
  // The server's RTCP (SR/RR every few seconds, with or without media) is the
  // one sign it still holds our session.
  GObject *session = bundled_rtp_session(webrtcbin_.get());
  if (!session) return;
  rtp_session_ = gobj::adopt(session);
  last_rtcp_us_ = g_get_monotonic_time();
  rtcp_handler_ = g_signal_connect_data(
      session, "on-receiving-rtcp", G_CALLBACK(+[](GObject *, GstBuffer *, gpointer data) {
        if (auto self = static_cast<WeakSession *>(data)->lock())
          self->last_rtcp_us_ = g_get_monotonic_time();
      }),
      new WeakSession(shared_from_this()),
      +[](gpointer data, GClosure *) { delete static_cast<WeakSession *>(data); }, GConnectFlags(0));

  auto *weak = new WeakSession(shared_from_this());
  GSource *timer = g_timeout_source_new_seconds(1);
  g_source_set_callback(
      timer,
      +[](gpointer data) -> gboolean {
        auto self = static_cast<WeakSession *>(data)->lock();
        if (!self || self->closed_ || self->failed_) return G_SOURCE_REMOVE;
        self->check_liveness();
        return G_SOURCE_CONTINUE;
      },
      weak, +[](gpointer data) { delete static_cast<WeakSession *>(data); });
  g_source_attach(timer, signalling_context());
  g_source_unref(timer);
}

void ClientSession::check_liveness() {
  const gint64 silent_us = g_get_monotonic_time() - last_rtcp_us_.load();
  if (silent_us <= gint64(config_.rtcp_timeout_s) * G_USEC_PER_SEC) return;
  fail(GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_READ,
       "the " + config_.protocol + " server stopped sending RTCP for " +
           std::to_string(config_.rtcp_timeout_s) +
           " s: the session was ended by the server or the server is gone",
       "");
}

void ClientSession::fail(GQuark domain, gint code, const std::string &message,
                         const std::string &debug, guint http_status) {
  if (failed_.exchange(true)) return;
  GST_WARNING("%s", message.c_str());
  gobj::Ref<GstElement> owner = gobj::adopt(static_cast<GstElement *>(g_weak_ref_get(&owner_)));
  if (owner && !closed_)
    post_error(owner.get(), domain, code, message, debug, http_status, config_.endpoint);
  end_async();
}

void ClientSession::end_async(std::function<void()> done) {
  std::string url;
  {
    std::lock_guard<std::mutex> l(lock_);
    url = std::exchange(resource_url_, std::string());
  }
  if (url.empty()) {
    if (done) done();
    return;
  }
  GST_DEBUG("DELETE %s", url.c_str());
  http_->delete_resource(url, [url, done](HttpResult r) {
    if (!r.ok()) GST_WARNING("%s", r.describe("DELETE").c_str());
    if (done) done();
  });
}

void ClientSession::end_sync() {
  closed_ = true;
  std::string url;
  {
    std::lock_guard<std::mutex> l(lock_);
    url = std::exchange(resource_url_, std::string());
  }
  if (url.empty()) return;
  GST_DEBUG("DELETE %s (waiting)", url.c_str());
  HttpResult r = http_->delete_resource_sync(url);
  if (!r.ok()) GST_WARNING("%s", r.describe("DELETE").c_str());
}

}  // namespace whipwhep
