#include "client-test-server.h"

#include <gst/webrtc/webrtc.h>

#include <condition_variable>

#include "harness.h"
#include "http-listener.h"
#include "ice.h"
#include "webrtc-negotiation.h"

namespace test {

// ---- TestHttpServer --------------------------------------------------------

TestHttpServer::TestHttpServer(Handler handler) : handler_(std::move(handler)) {
  ctx_ = g_main_context_new();
  loop_ = g_main_loop_new(ctx_, FALSE);
  std::mutex m;
  std::condition_variable cv;
  bool started = false;
  struct Start {
    TestHttpServer *self;
    std::mutex *m;
    std::condition_variable *cv;
    bool *started;
  } start{this, &m, &cv, &started};
  g_main_context_invoke(
      ctx_,
      +[](gpointer data) -> gboolean {
        auto *st = static_cast<Start *>(data);
        TestHttpServer *self = st->self;
        self->server_ = soup_server_new(nullptr, nullptr);
        whipwhep::release_leaked_accept_refs(self->server_);  // libsoup 3.2's accept leak
        soup_server_add_handler(
            self->server_, nullptr,
            +[](SoupServer *, SoupServerMessage *msg, const char *path, GHashTable *, gpointer data) {
              auto *self = static_cast<TestHttpServer *>(data);
              SeenRequest req;
              req.method = soup_server_message_get_method(msg);
              req.path = path;
              SoupMessageHeaders *h = soup_server_message_get_request_headers(msg);
              req.authorization = gobj::str_or(soup_message_headers_get_one(h, "Authorization"));
              req.content_type = gobj::str_or(soup_message_headers_get_content_type(h, nullptr));
              SoupMessageBody *body = soup_server_message_get_request_body(msg);
              if (body && body->data) req.body.assign(body->data, body->length);
              {
                std::lock_guard<std::mutex> l(self->lock_);
                self->seen_.push_back(req);
                self->hanging_.push_back(gobj::ref(msg));
              }
              soup_server_message_pause(msg);
              auto held = gobj::ref(msg);
              GMainContext *ctx = self->ctx_;
              auto once = std::make_shared<std::atomic<bool>>(false);
              self->handler_(req, [held, ctx, once](Reply r) {
                if (once->exchange(true)) return;
                auto *job = new std::pair<gobj::Ref<SoupServerMessage>, Reply>(held, std::move(r));
                g_main_context_invoke_full(
                    ctx, G_PRIORITY_DEFAULT,
                    +[](gpointer data) -> gboolean {
                      auto *job = static_cast<std::pair<gobj::Ref<SoupServerMessage>, Reply> *>(data);
                      SoupServerMessage *m = job->first.get();
                      const Reply &r = job->second;
                      soup_server_message_set_status(m, r.status, nullptr);
                      SoupMessageHeaders *rh = soup_server_message_get_response_headers(m);
                      for (auto &h : r.headers) soup_message_headers_append(rh, h.first.c_str(), h.second.c_str());
                      if (!r.content_type.empty() || !r.body.empty())
                        soup_server_message_set_response(
                            m, r.content_type.empty() ? "text/plain" : r.content_type.c_str(),
                            SOUP_MEMORY_COPY, r.body.data(), r.body.size());
                      soup_server_message_unpause(m);
                      return G_SOURCE_REMOVE;
                    },
                    job, +[](gpointer data) {
                      delete static_cast<std::pair<gobj::Ref<SoupServerMessage>, Reply> *>(data);
                    });
              });
            },
            self, nullptr);
        gobj::Unique<GError> err;
        gobj::Ref<GInetAddress> lo = gobj::adopt(g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4));
        gobj::Ref<GSocketAddress> addr = gobj::adopt(g_inet_socket_address_new(lo.get(), 0));
        if (soup_server_listen(self->server_, addr.get(), SoupServerListenOptions(0), gobj::out(err))) {
          GSList *uris = soup_server_get_uris(self->server_);
          if (uris) self->port_ = g_uri_get_port(static_cast<GUri *>(uris->data));
          g_slist_free_full(uris, (GDestroyNotify)g_uri_unref);
        }
        std::lock_guard<std::mutex> l(*st->m);
        *st->started = true;
        st->cv->notify_all();
        return G_SOURCE_REMOVE;
      },
      &start);
  thread_ = g_thread_new("test-http", &TestHttpServer::thread_main, this);
  std::unique_lock<std::mutex> l(m);
  cv.wait_for(l, std::chrono::seconds(5), [&] { return started; });
}

gpointer TestHttpServer::thread_main(gpointer data) {
  auto *self = static_cast<TestHttpServer *>(data);
  g_main_context_push_thread_default(self->ctx_);
  g_main_loop_run(self->loop_);
  // Tear the server down on its own context.
  {
    std::lock_guard<std::mutex> l(self->lock_);
    self->hanging_.clear();
  }
  soup_server_disconnect(self->server_);
  g_object_unref(self->server_);
  while (g_main_context_iteration(self->ctx_, FALSE)) {
  }
  g_main_context_pop_thread_default(self->ctx_);
  return nullptr;
}

TestHttpServer::~TestHttpServer() {
  g_main_loop_quit(loop_);
  g_thread_join(thread_);
  g_main_loop_unref(loop_);
  g_main_context_unref(ctx_);
}

std::string TestHttpServer::url(const std::string &path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

std::vector<SeenRequest> TestHttpServer::requests() const {
  std::lock_guard<std::mutex> l(lock_);
  return seen_;
}

int TestHttpServer::count(const std::string &method) const {
  std::lock_guard<std::mutex> l(lock_);
  int n = 0;
  for (auto &r : seen_) n += r.method == method;
  return n;
}

// ---- peers -----------------------------------------------------------------

namespace {

gobj::Ref<GstElement> make_webrtcbin(GstElement *pipeline) {
  gobj::Ref<GstElement> w = gobj::sink(gst_element_factory_make("webrtcbin", nullptr));
  gst_util_set_object_arg(G_OBJECT(w.get()), "bundle-policy", "max-bundle");
  g_object_set(w.get(), "latency", 40, nullptr);
  whipwhep::IceSettings ice;
  ice.local_addresses = {"127.0.0.1"};
  whipwhep::configure_ice(w.get(), ice);
  gst_bin_add(GST_BIN(pipeline), w.get());
  return w;
}

void answer(GstElement *webrtc, const SeenRequest &req, TestHttpServer::Respond respond,
            whipwhep::PrepareAnswer prepare) {
  if (req.method == "DELETE") {
    respond(Reply{200, "", "", {}});
    return;
  }
  if (req.method != "POST") {
    respond(Reply{405, "text/plain", "method not allowed", {}});
    return;
  }
  std::string why;
  GstSDPMessage *offer = whipwhep::parse_sdp(req.body, &why);
  if (!offer) {
    respond(Reply{400, "text/plain", why, {}});
    return;
  }
  whipwhep::answer_offer(webrtc, offer, std::move(prepare), [respond](bool ok, std::string text) {
    if (!ok) return respond(Reply{422, "text/plain", text, {}});
    respond(Reply{201, "application/sdp", text, {{"Location", "/whip/session-1"}, {"ETag", "\"e1\""}}});
  });
}

}  // namespace

ReceivingPeer::ReceivingPeer() {
  pipeline_ = gobj::sink(gst_pipeline_new("receiving-peer"));
  webrtc_ = make_webrtcbin(pipeline_.get());
  g_signal_connect(webrtc_.get(), "pad-added", G_CALLBACK(&ReceivingPeer::on_pad_added), this);
  gst_element_set_state(pipeline_.get(), GST_STATE_PLAYING);
}

ReceivingPeer::~ReceivingPeer() {
  gst_element_set_state(pipeline_.get(), GST_STATE_NULL);
  g_signal_handlers_disconnect_by_data(webrtc_.get(), this);
}

std::vector<std::string> ReceivingPeer::codecs() const {
  std::lock_guard<std::mutex> l(lock_);
  return codecs_;
}

void ReceivingPeer::handle(const SeenRequest &req, TestHttpServer::Respond respond) {
  answer(webrtc_.get(), req, std::move(respond), nullptr);
}

void ReceivingPeer::on_pad_added(GstElement *, GstPad *pad, gpointer data) {
  auto *self = static_cast<ReceivingPeer *>(data);
  if (GST_PAD_DIRECTION(pad) != GST_PAD_SRC) return;
  gobj::Ref<GstCaps> caps = gobj::adopt(gst_pad_get_current_caps(pad));
  if (!caps) caps = gobj::adopt(gst_pad_query_caps(pad, nullptr));
  const GstStructure *s = gst_caps_get_structure(caps.get(), 0);
  std::string enc = gobj::str_or(gst_structure_get_string(s, "encoding-name"));
  const char *desc = nullptr;
  bool video = true;
  if (enc == "VP8") desc = "rtpvp8depay ! vp8dec";
  else if (enc == "VP9") desc = "rtpvp9depay ! vp9dec";
  else if (enc == "H264") desc = "rtph264depay ! h264parse ! avdec_h264";
  else if (enc == "OPUS") desc = "rtpopusdepay ! opusdec", video = false;
  if (!desc) return;
  {
    std::lock_guard<std::mutex> l(self->lock_);
    self->codecs_.push_back(enc);
  }
  std::string full = std::string(desc) + " ! fakesink sync=false async=false name=out";
  GstElement *bin = gst_parse_bin_from_description(full.c_str(), TRUE, nullptr);
  gst_bin_add(GST_BIN(self->pipeline_.get()), bin);
  gobj::Ref<GstElement> out = gobj::adopt(gst_bin_get_by_name(GST_BIN(bin), "out"));
  gobj::Ref<GstPad> outpad = gobj::adopt(gst_element_get_static_pad(out.get(), "sink"));
  gst_pad_add_probe(outpad.get(), GST_PAD_PROBE_TYPE_BUFFER,
                    video ? +[](GstPad *, GstPadProbeInfo *, gpointer d) -> GstPadProbeReturn {
                      static_cast<ReceivingPeer *>(d)->video_frames_++;
                      return GST_PAD_PROBE_OK;
                    }
                          : +[](GstPad *, GstPadProbeInfo *, gpointer d) -> GstPadProbeReturn {
                              static_cast<ReceivingPeer *>(d)->audio_buffers_++;
                              return GST_PAD_PROBE_OK;
                            },
                    self, nullptr);
  gst_element_sync_state_with_parent(bin);
  gobj::Ref<GstPad> sink = gobj::adopt(gst_element_get_static_pad(bin, "sink"));
  gst_pad_link(pad, sink.get());
}

SendingPeer::SendingPeer() {
  pipeline_ = gobj::sink(gst_pipeline_new("sending-peer"));
  GstElement *src = gst_parse_bin_from_description(
      "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! "
      "vp8enc deadline=1 cpu-used=8 keyframe-max-dist=30 ! rtpvp8pay name=pay pt=96",
      TRUE, nullptr);
  gst_bin_add(GST_BIN(pipeline_.get()), src);
  pay_ = gobj::adopt(gst_bin_get_by_name(GST_BIN(src), "pay"));
  webrtc_ = make_webrtcbin(pipeline_.get());
  // RTCP every ~second, like a browser sends it for video, instead of
  // rtpsession's 5 s minimum: a test of the client's RTCP timeout can then
  // use a short one (and wait it out) without a false alarm.
  gobj::Ref<GstElement> rtpbin = gobj::adopt(gst_bin_get_by_name(GST_BIN(webrtc_.get()), "rtpbin"));
  if (rtpbin)
    g_signal_connect(rtpbin.get(), "element-added",
                     G_CALLBACK(+[](GstBin *, GstElement *e, gpointer) {
                       GstElementFactory *f = gst_element_get_factory(e);
                       if (f && g_str_equal(GST_OBJECT_NAME(f), "rtpsession"))
                         g_object_set(e, "rtcp-min-interval", guint64(GST_SECOND), nullptr);
                     }),
                     nullptr);
  gst_element_link_pads(src, "src", webrtc_.get(), "sink_%u");
  gst_element_set_state(pipeline_.get(), GST_STATE_PLAYING);
}

SendingPeer::~SendingPeer() { gst_element_set_state(pipeline_.get(), GST_STATE_NULL); }

bool SendingPeer::ready(guint timeout_ms) {
  gobj::Ref<GstPad> src = gobj::adopt(gst_element_get_static_pad(pay_.get(), "src"));
  return wait_for([&] { return gst_pad_has_current_caps(src.get()); }, timeout_ms);
}

void SendingPeer::handle(const SeenRequest &req, TestHttpServer::Respond respond) {
  gobj::Ref<GstElement> webrtc = webrtc_;
  gobj::Ref<GstElement> pay = pay_;
  // Fact 2 (gst-1.22-facts.md): answer a recvonly offer with media by
  // giving the transceiver codec preferences and direction before create-answer.
  answer(webrtc_.get(), req, std::move(respond), [webrtc, pay]() -> std::string {
    gobj::Ref<GstPad> src = gobj::adopt(gst_element_get_static_pad(pay.get(), "src"));
    gobj::Ref<GstCaps> caps = gobj::adopt(gst_pad_get_current_caps(src.get()));
    if (!caps) return "sender has no caps yet";
    caps = gobj::adopt(gst_caps_make_writable(caps.release()));
    GstStructure *s = gst_caps_get_structure(caps.get(), 0);
    gst_structure_remove_fields(s, "ssrc", "seqnum-offset", "timestamp-offset", nullptr);
    GArray *trans = nullptr;
    g_signal_emit_by_name(webrtc.get(), "get-transceivers", &trans);
    for (guint i = 0; trans && i < trans->len; i++) {
      GstWebRTCRTPTransceiver *t = g_array_index(trans, GstWebRTCRTPTransceiver *, i);
      GstWebRTCKind kind = GST_WEBRTC_KIND_UNKNOWN;
      g_object_get(t, "kind", &kind, nullptr);
      if (kind == GST_WEBRTC_KIND_AUDIO) continue;  // this peer only sends video
      g_object_set(t, "direction", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDONLY,
                   "codec-preferences", caps.get(), nullptr);
    }
    if (trans) g_array_unref(trans);
    return {};
  });
}

}  // namespace test
