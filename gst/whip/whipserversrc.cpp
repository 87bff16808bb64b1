// whipserversrc: the WHIP server side (RFC 9725). One publisher at a time.
//
// Design
// * One webrtcbin per publisher session, created on POST and removed on
//   DELETE, on ICE failure or when media stops; the element itself (a live
//   source bin) stays up.
// * Each received stream goes webrtcbin.src_N -> depayloader [-> parser] ->
//   capsfilter (fixed encoded caps). The element's src pads video_%u /
//   audio_%u are GHOST PADS created for the first publisher and RETARGETED to
//   the next publisher's chain: no copy, no queue, no extra thread. A pad
//   probe on each chain's output drops EOS and flushes (a closing DTLS
//   connection must not end the downstream stream) and everything once the
//   session is closing, so downstream sees a pause, then the new publisher's
//   stream-start/caps/segment: never EOS. (A funnel would push EOS when its
//   last sink pad is released.)
// * A later publisher must use the same codec on an existing pad: a
//   different one is answered 422 ("codec change not supported on a live
//   input") instead of renegotiating downstream mid-stream.
// * Upstream GstForceKeyUnit on a src pad goes through the ghost pad into
//   the chain, whose depayloader forwards it into webrtcbin where rtpsession
//   turns it into RTCP PLI (rate-limited per pad to one per 500 ms). A new
//   session asks for a keyframe once when its stream appears.
// * Threads: handle-request may come from any thread and never blocks; the
//   answer is replied from webrtcbin's thread. webrtcbin callbacks never
//   change states: sessions are torn down through gst_element_call_async.
//   A 1 s watchdog on the shared signalling context ends sessions whose ICE
//   failed or whose media stopped (no RTP for `publisher-timeout` seconds).
// Files: this one is the element (GObject glue, properties, request
// routing, the session map, src pad retargeting, watchdog tick);
// publisher-session.h is one publisher (chains, watchdog state);
// publish-offer.h plans the answer.
#include "whipserversrc.h"

#include <gst/video/video.h>
#include <gst/webrtc/webrtc.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "elements.h"
#include "gobj.h"
#include "http-listener.h"
#include "http-types.h"
#include "offer-checks.h"
#include "ice.h"
#include "publish-offer.h"
#include "publisher-session.h"
#include "sdp-codecs.h"
#include "sdpfrag.h"
#include "signalling-context.h"
#include "webrtc-negotiation.h"

GST_DEBUG_CATEGORY_STATIC(whipserversrc_debug);
#define GST_CAT_DEFAULT whipserversrc_debug

struct _GstWhipwhepWhipServerSrc;

namespace {

using namespace whipwhep;

constexpr const char *kDefaultAddress = "127.0.0.1";
constexpr guint kDefaultLatencyMs = 40;
constexpr guint kDefaultPublisherTimeoutS = 15;
// At most one keyframe request to the publisher per window: keyframes are
// several times the size of other frames, and a PLI storm from many viewers
// must not turn the stream into keyframes. The same window as whepserversink's
// fan-out (fanout.h), so its coalesced requests are never held back twice.
constexpr gint64 kKeyframeMinIntervalUs = 300 * 1000;

struct Settings {
  std::string address = kDefaultAddress;
  guint port = 0;
  std::string auth_token;
  std::string ice_addresses;
  std::string stun_server;
  std::string turn_server;
  guint latency = kDefaultLatencyMs;
  bool replace_publisher = false;
  guint publisher_timeout = kDefaultPublisherTimeoutS;
};


// A persistent src pad of the element.
struct Output {
  std::string encoding;
  gobj::Ref<GstPad> ghost;
  std::atomic<gint64> last_keyframe_request{0};
  std::atomic<bool> keyframe_pending{false};  // a request inside the window, not yet sent
};

using Session = PublisherSession;

enum { SIGNAL_HANDLE_REQUEST, SIGNAL_PUBLISHER_CONNECTED, SIGNAL_PUBLISHER_DISCONNECTED, N_SIGNALS };
guint signals[N_SIGNALS];

enum {
  PROP_0,
  PROP_ADDRESS,
  PROP_PORT,
  PROP_AUTH_TOKEN,
  PROP_ICE_ADDRESSES,
  PROP_STUN_SERVER,
  PROP_TURN_SERVER,
  PROP_LATENCY,
  PROP_REPLACE_PUBLISHER,
  PROP_PUBLISHER_TIMEOUT,
  PROP_PUBLISHING,
  PROP_BOUND_PORT,
  N_PROPS
};
GParamSpec *props[N_PROPS];

class Impl {
 public:
  explicit Impl(GstElement *element) : element_(element) {}
  ~Impl();

  GstElement *element_;  // not owned: owns us
  std::mutex settings_lock_;
  Settings settings_;

  std::mutex lock_;  // sessions_, outputs_, listener_, watchdog_
  std::map<std::string, std::shared_ptr<Session>> sessions_;
  std::map<std::string, std::shared_ptr<Output>> outputs_;
  std::unique_ptr<HttpListener> listener_;
  GSource *watchdog_ = nullptr;
  std::atomic<guint> bound_port_{0};
  std::atomic<bool> publishing_{false};

  Settings settings() {
    std::lock_guard<std::mutex> l(settings_lock_);
    return settings_;
  }

  bool start(std::string *error);
  void stop_listener();
  void end_all_sessions();
  void remove_outputs();

  void handle_request(const GstStructure *request, GstPromise *promise);
  void post(const HttpRequest &req, GstPromise *promise);
  HttpResponse patch(const HttpRequest &req);

  std::shared_ptr<Session> create_session(const Settings &s, std::vector<MlinePlan> plan,
                                          std::string *error, guint *status);
  void remove_session(const std::string &id, const char *reason);
  static void teardown(GstElement *element, gpointer data);
  void teardown_session(Session &session);

  void on_pad_added(Session &session, GstPad *pad);
  void on_ice_state(Session &session);
  void watchdog();
  void update_publishing();
  void announce_if_ready(PublisherSession &session);
};

Impl *impl_of(GstElement *e);

// ---- request handling -------------------------------------------------------

void Impl::handle_request(const GstStructure *request, GstPromise *promise) {
  HttpRequest req;
  if (!request_from_structure(request, &req)) {
    reply(promise, HttpResponse::text(400, "not a whipwhep/request structure"));
    return;
  }
  const Settings s = settings();
  if (!s.auth_token.empty() && (req.method == "POST" || req.method == "DELETE" ||
                                req.method == "PATCH")) {
    if (!bearer_matches(req.authorization, s.auth_token)) {
      HttpResponse r = HttpResponse::text(
          401, req.authorization.empty() ? "missing bearer token" : "wrong bearer token");
      r.headers.push_back({"WWW-Authenticate", "Bearer"});
      reply(promise, r);
      return;
    }
  }
  if (req.method == "POST" && req.session.empty()) return post(req, promise);
  if (req.method == "DELETE" && !req.session.empty()) {
    bool known;
    {
      std::lock_guard<std::mutex> l(lock_);
      known = sessions_.count(req.session) > 0;
    }
    if (!known) return reply(promise, HttpResponse::text(404, "no such session"));
    remove_session(req.session, "publisher sent DELETE");
    HttpResponse r;
    r.status = 200;
    return reply(promise, r);
  }
  if (req.method == "PATCH" && !req.session.empty()) return reply(promise, patch(req));
  HttpResponse r = HttpResponse::text(405, "method " + req.method + " not allowed here");
  r.headers.push_back({"Allow", req.session.empty() ? "POST" : "PATCH, DELETE"});
  reply(promise, r);
}

void Impl::post(const HttpRequest &req, GstPromise *promise) {
  if (req.content_type != "application/sdp")
    return reply(promise, HttpResponse::text(415, "the offer must be application/sdp, not '" +
                                                      req.content_type + "'"));
  GstState state = GST_STATE(element_);
  if (state < GST_STATE_READY)
    return reply(promise, HttpResponse::text(503, "the ingest element is not started"));
  std::string why;
  gobj::Unique<GstSDPMessage> offer(parse_sdp(req.body_string(), &why));
  if (!offer) return reply(promise, HttpResponse::text(400, why));
  if (guint status = check_offer(offer.get(), &why)) return reply(promise, HttpResponse::text(status, why));

#ifndef GST_DISABLE_GST_DEBUG
  GST_DEBUG_OBJECT(element_, "offer:\n%s", req.body_string().c_str());
#endif
  std::vector<MlinePlan> plan;
  std::map<std::string, std::string> live_encodings;
  {
    std::lock_guard<std::mutex> l(lock_);
    for (const auto &kv : outputs_) live_encodings[kv.first] = kv.second->encoding;
  }
  HttpResponse bad = plan_publish_offer(offer.get(), live_encodings, &plan);
  if (bad.status) return reply(promise, bad);

  const Settings s = settings();
  guint status = 500;
  auto session = create_session(s, std::move(plan), &why, &status);
  if (!session) return reply(promise, HttpResponse::text(status, why));
  session->remote_ufrag = offer_ice_ufrag(offer.get());

  auto self = gobj::ref(element_);
  auto held_promise = gobj::ref(promise);
  std::weak_ptr<Session> weak = session;
  answer_offer(
      session->webrtcbin.get(), offer.release(),
      [weak]() -> std::string {
        auto session = weak.lock();
        if (!session) return "session ended";
        // Runs on webrtcbin's thread once the offer is applied, before
        // create-answer. webrtcbin 1.22 only creates transceivers for a
        // remote offer inside create-answer, answering every offered codec;
        // so add our own, one per m-line in order: the answer task takes the
        // first unassociated transceiver whose codec-preferences intersect
        // the m-line, which gives exactly the chosen codec with the
        // publisher's payload type. Declined m-lines get an inactive one.
        for (const MlinePlan &p : session->plan) {
          if (p.output.empty()) continue;
          GstCaps *caps = p.accepted ? p.codec.rtp_caps.get() : p.declined_caps.get();
          if (!caps) continue;
          GstWebRTCRTPTransceiver *t = nullptr;
          g_signal_emit_by_name(session->webrtcbin.get(), "add-transceiver",
                                p.accepted ? GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_RECVONLY
                                           : GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_INACTIVE,
                                caps, &t);
          if (!t) return "webrtcbin refused a transceiver for " + p.output;
          auto held = gobj::adopt(t);
          // NACK/RTX for video only: within the receive latency budget an
          // audio retransmission rarely arrives in time (Opus conceals the
          // loss), and publishers with jittery audio packetization (44.1 kHz,
          // 1024-sample frames) made the audio jitterbuffer send NACK
          // bursts that held the early-feedback RTCP slot, delaying the
          // keyframe request for a newly joined viewer by up to 600 ms.
          if (p.accepted && g_str_has_prefix(p.output.c_str(), "video"))
            g_object_set(t, "do-nack", TRUE, nullptr);
        }
        // Keyframe requests for joining viewers ride on RTCP: AVPF allows one
        // early packet per regular interval, so a 5 s minimum interval (the
        // default) can hold a PLI back for seconds. RFC 4585 lets us report
        // more often; at 500 ms the cost is a few small packets a second.
        gobj::Ref<GObject> rtp_session = gobj::adopt(bundled_rtp_session(session->webrtcbin.get()));
        if (rtp_session)
          g_object_set(rtp_session.get(), "rtcp-min-interval", guint64(500 * GST_MSECOND), nullptr);
        return {};
      },
      [self, held_promise, weak](bool ok, std::string text) {
        Impl *impl = impl_of(self.get());
        auto session = weak.lock();
        if (!ok || !session || session->closing) {
          GST_WARNING_OBJECT(self.get(), "cannot answer the offer: %s", text.c_str());
          if (session) impl->remove_session(session->id, "negotiation failed");
          // webrtcbin refusing an offer we validated means it is unusable.
          reply(held_promise.get(),
                HttpResponse::text(session ? 422 : 500, "cannot answer the offer: " + text));
          return;
        }
        HttpResponse r;
        r.status = 201;
        r.content_type = "application/sdp";
        r.body = text;
        r.session = session->id;
        r.etag = session->etag;
        session->created = g_get_monotonic_time();
        GST_INFO_OBJECT(self.get(), "session %s answered", session->id.c_str());
        GST_DEBUG_OBJECT(self.get(), "answer:\n%s", text.c_str());
        reply(held_promise.get(), r);
      });
}

HttpResponse Impl::patch(const HttpRequest &req) {
  std::shared_ptr<Session> session;
  {
    std::lock_guard<std::mutex> l(lock_);
    auto it = sessions_.find(req.session);
    if (it != sessions_.end()) session = it->second;
  }
  if (!session) return HttpResponse::text(404, "no such session");
  if (req.content_type != "application/trickle-ice-sdpfrag")
    return HttpResponse::text(415, "PATCH needs application/trickle-ice-sdpfrag");
  if (!req.if_match.empty() && req.if_match != "*" && req.if_match != session->etag)
    return HttpResponse::text(412, "If-Match does not match the ICE session's ETag");
  const SdpFrag frag = parse_sdpfrag(req.body_string());
  if (!frag.ice_ufrag.empty() && frag.ice_ufrag != session->remote_ufrag)
    return HttpResponse::text(422, "ICE restart is not supported; start a new session");
  // With max-bundle every candidate belongs to the first transport.
  for (const auto &c : frag.candidates)
    g_signal_emit_by_name(session->webrtcbin.get(), "add-ice-candidate", c.first,
                          c.second.c_str());
  HttpResponse r;
  r.status = 204;
  return r;
}

// ---- sessions -----------------------------------------------------------------

std::shared_ptr<Session> Impl::create_session(const Settings &s, std::vector<MlinePlan> plan,
                                              std::string *error, guint *status) {
  auto session = std::make_shared<Session>();
  session->id = random_id_hex128();
  session->etag = "\"" + random_id_hex128() + "\"";
  session->plan = std::move(plan);
  session->created = g_get_monotonic_time();
  session->media_timeout_us = gint64(s.publisher_timeout) * G_USEC_PER_SEC;
  session->webrtcbin = gobj::sink(gst_element_factory_make("webrtcbin", nullptr));
  if (!session->webrtcbin) {
    *error = "webrtcbin is not installed (gstreamer1.0-plugins-bad, gstreamer1.0-nice)";
    return nullptr;
  }
  GstElement *wb = session->webrtcbin.get();
  g_object_set(wb, "bundle-policy", GST_WEBRTC_BUNDLE_POLICY_MAX_BUNDLE, "latency", s.latency,
               nullptr);
  nack_only_gaps(wb);
  IceSettings ice;
  ice.local_addresses = split_list(s.ice_addresses);
  ice.stun_server = s.stun_server;
  if (!s.turn_server.empty()) ice.turn_servers.push_back(s.turn_server);
  configure_ice(wb, ice);

  Session *raw = session.get();
  g_signal_connect(wb, "pad-added", G_CALLBACK(+[](GstElement *bin, GstPad *pad, gpointer data) {
                     auto *session = static_cast<Session *>(data);
                     GstElement *parent = GST_ELEMENT(gst_object_get_parent(GST_OBJECT(bin)));
                     if (!parent) return;
                     auto holder = gobj::adopt(parent);
                     impl_of(parent)->on_pad_added(*session, pad);
                   }),
                   raw);
  auto on_state = G_CALLBACK(+[](GstElement *bin, GParamSpec *, gpointer data) {
    GstElement *parent = GST_ELEMENT(gst_object_get_parent(GST_OBJECT(bin)));
    if (!parent) return;
    auto holder = gobj::adopt(parent);
    impl_of(parent)->on_ice_state(*static_cast<Session *>(data));
  });
  g_signal_connect(wb, "notify::ice-connection-state", on_state, raw);
  g_signal_connect(wb, "notify::connection-state", on_state, raw);

  // One publisher at a time: check and claim the input under one lock, so
  // two simultaneous POSTs cannot both get in.
  std::vector<std::string> replaced;
  {
    std::lock_guard<std::mutex> l(lock_);
    if (!sessions_.empty() && !s.replace_publisher) {
      g_signal_handlers_disconnect_by_data(wb, raw);
      *status = 409;
      *error = "a publisher is already live on this input";
      return nullptr;
    }
    for (const auto &kv : sessions_) replaced.push_back(kv.first);
    sessions_[session->id] = session;
  }
  for (const auto &id : replaced) remove_session(id, "replaced by a new publisher");
  gst_bin_add(GST_BIN(element_), wb);
  if (!gst_element_sync_state_with_parent(wb)) {
    *error = "cannot start webrtcbin";
    remove_session(session->id, "webrtcbin failed to start");
    return nullptr;
  }
  GST_INFO_OBJECT(element_, "new session %s", session->id.c_str());
  return session;
}

void Impl::remove_session(const std::string &id, const char *reason) {
  std::shared_ptr<Session> session;
  {
    std::lock_guard<std::mutex> l(lock_);
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return;
    session = it->second;
    sessions_.erase(it);
  }
  GST_INFO_OBJECT(element_, "ending session %s: %s", id.c_str(), reason);
  session->closing = true;
  if (session->announced)
    g_signal_emit(element_, signals[SIGNAL_PUBLISHER_DISCONNECTED], 0, id.c_str());
  update_publishing();
  // Never change states from the caller's thread (often webrtcbin's own).
  gst_element_call_async(element_, &Impl::teardown, new std::shared_ptr<Session>(session),
                         +[](gpointer d) { delete static_cast<std::shared_ptr<Session> *>(d); });
}

void Impl::teardown(GstElement *element, gpointer data) {
  impl_of(element)->teardown_session(**static_cast<std::shared_ptr<Session> *>(data));
}

void Impl::teardown_session(Session &session) {
  session.closing = true;
  GstElement *wb = session.webrtcbin.get();
  if (!wb) return;
  g_signal_handlers_disconnect_by_data(wb, &session);
  std::vector<Chain> chains;
  {
    std::lock_guard<std::mutex> l(session.lock);
    chains.swap(session.chains);
  }
  {
    // Detach our chains from the src pads unless a newer session took them.
    std::lock_guard<std::mutex> l(lock_);
    for (auto &c : chains) {
      auto it = outputs_.find(c.output);
      if (it == outputs_.end()) continue;
      gobj::Ref<GstPad> target =
          gobj::adopt(gst_ghost_pad_get_target(GST_GHOST_PAD(it->second->ghost.get())));
      if (target == c.src) gst_ghost_pad_set_target(GST_GHOST_PAD(it->second->ghost.get()), nullptr);
    }
  }
  // The element's own state changes (e.g. PLAYING -> PAUSED on another
  // thread) iterate over its children: locked, ours are skipped, so none can
  // be put back to PAUSED after we set it to NULL and then disposed in PAUSED
  // when that iteration drops the last reference. An iteration already past
  // that check is caught by the second NULL after the removal.
  std::vector<GstElement *> all = {wb};
  for (auto &c : chains)
    for (auto &e : c.elements) all.push_back(e.get());
  for (GstElement *e : all) gst_element_set_locked_state(e, TRUE);
  for (GstElement *e : all) gst_element_set_state(e, GST_STATE_NULL);
  for (GstElement *e : all)
    if (GST_OBJECT_PARENT(e) == GST_OBJECT(element_)) gst_bin_remove(GST_BIN(element_), e);
  for (GstElement *e : all) gst_element_set_state(e, GST_STATE_NULL);
  session.webrtcbin.reset();
  GST_DEBUG_OBJECT(element_, "session %s torn down", session.id.c_str());
}

void Impl::update_publishing() {
  bool now = false;
  {
    std::lock_guard<std::mutex> l(lock_);
    for (const auto &kv : sessions_) now = now || kv.second->announced;
  }
  if (publishing_.exchange(now) != now)
    g_object_notify_by_pspec(G_OBJECT(element_), props[PROP_PUBLISHING]);
}

GstPadProbeReturn keyframe_rate_limit(GstPad *pad, GstPadProbeInfo *info, gpointer data) {
  GstEvent *ev = GST_PAD_PROBE_INFO_EVENT(info);
  if (!ev || !gst_video_event_is_force_key_unit(ev)) return GST_PAD_PROBE_OK;
  auto *out = static_cast<Output *>(data);
  const gint64 now = g_get_monotonic_time();
  gint64 last = out->last_keyframe_request;
  if (now - last < kKeyframeMinIntervalUs) {
    // Coalesced, not lost: a viewer that joined just after another still
    // needs its keyframe (dropping it left it waiting for the viewer's own
    // PLI: first frame ~420 ms after the answer instead of ~100).
    out->keyframe_pending = true;
    GST_LOG_OBJECT(pad, "keyframe request deferred (rate limit)");
    return GST_PAD_PROBE_DROP;
  }
  out->last_keyframe_request = now;
  GST_DEBUG_OBJECT(pad, "keyframe request forwarded to the publisher");
  return GST_PAD_PROBE_OK;
}

// On each buffer going out: send a deferred request once its window ended.
GstPadProbeReturn keyframe_deferred(GstPad *pad, GstPadProbeInfo *, gpointer data) {
  auto *out = static_cast<Output *>(data);
  if (!out->keyframe_pending.load(std::memory_order_relaxed)) return GST_PAD_PROBE_OK;
  if (g_get_monotonic_time() - out->last_keyframe_request < kKeyframeMinIntervalUs)
    return GST_PAD_PROBE_OK;
  if (!out->keyframe_pending.exchange(false)) return GST_PAD_PROBE_OK;
  out->last_keyframe_request = 0;  // lets it through keyframe_rate_limit
  gst_pad_send_event(pad, gst_video_event_new_upstream_force_key_unit(GST_CLOCK_TIME_NONE, TRUE, 0));
  return GST_PAD_PROBE_OK;
}

void Impl::on_pad_added(Session &session, GstPad *pad) {
  if (GST_PAD_DIRECTION(pad) != GST_PAD_SRC || session.closing) return;
  gobj::Ref<GstWebRTCRTPTransceiver> trans;
  g_object_get(pad, "transceiver", trans.out(), nullptr);
  guint mline = G_MAXUINT;
  if (trans) g_object_get(trans.get(), "mlineindex", &mline, nullptr);
  if (mline >= session.plan.size() || !session.plan[mline].accepted) {
    // Never leave a webrtcbin pad unlinked: not-linked stops the shared
    // (bundled) transport and with it every stream of the session.
    GST_WARNING_OBJECT(element_, "unexpected stream on %s (m-line %u)", GST_PAD_NAME(pad), mline);
    session.sink_unexpected_stream(GST_BIN(element_), pad);
    return;
  }
  const MlinePlan &p = session.plan[mline];
  Chain chain;
  std::string what;
  switch (session.build_chain(GST_BIN(element_), p, pad, &chain, &what)) {
    case Session::ChainError::None:
      break;
    case Session::ChainError::MissingElement:
      GST_ELEMENT_ERROR(element_, CORE, MISSING_PLUGIN, ("element '%s' is not installed", what.c_str()),
                        (nullptr));
      return;
    case Session::ChainError::LinkFailed:
      GST_ELEMENT_ERROR(element_, CORE, NEGOTIATION,
                        ("cannot link the %s stream of the publisher", what.c_str()), (nullptr));
      return;
  }

  // Point the persistent src pad at this chain (create it the first time).
  bool add_pad = false;
  gobj::Ref<GstPad> ghost;
  {
    std::lock_guard<std::mutex> l(lock_);
    auto &out = outputs_[p.output];
    if (!out) {
      out = std::make_shared<Output>();
      out->encoding = p.codec.encoding;
      const bool video = p.output.rfind("video", 0) == 0;
      GstPadTemplate *tmpl = gst_element_class_get_pad_template(
          GST_ELEMENT_GET_CLASS(element_), video ? "video_%u" : "audio_%u");
      out->ghost = gobj::sink(gst_ghost_pad_new_from_template(p.output.c_str(), chain.src.get(), tmpl));
      gst_pad_add_probe(out->ghost.get(), GST_PAD_PROBE_TYPE_EVENT_UPSTREAM, keyframe_rate_limit,
                        out.get(), nullptr);
      gst_pad_add_probe(out->ghost.get(),
                        GstPadProbeType(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST),
                        keyframe_deferred, out.get(), nullptr);
      add_pad = true;
    } else {
      gst_ghost_pad_set_target(GST_GHOST_PAD(out->ghost.get()), chain.src.get());
    }
    ghost = out->ghost;
  }
  {
    std::lock_guard<std::mutex> l(session.lock);
    for (auto &c : session.chains)
      if (!c.elements.empty() && c.elements.front() == chain.elements.front()) c = chain;
  }
  if (add_pad) {
    gst_pad_set_active(ghost.get(), TRUE);
    gst_element_add_pad(element_, ghost.get());
  }
  GST_INFO_OBJECT(element_, "session %s: %s now carries %s", session.id.c_str(),
                  p.output.c_str(), p.codec.encoding.c_str());
  // A new publisher: ask for a keyframe once, so consumers start at once.
  if (p.output.rfind("video", 0) == 0)
    gst_pad_send_event(pad, gst_video_event_new_upstream_force_key_unit(GST_CLOCK_TIME_NONE,
                                                                        TRUE, 0));
  session.last_media = g_get_monotonic_time();
  gint64 none = 0;
  session.first_output.compare_exchange_strong(none, g_get_monotonic_time());
  announce_if_ready(session);
}

// "publishing" (and publisher-connected) only once every stream of the
// publisher has its src pad: a consumer that reacts to it (the server
// letting WHEP viewers in, whepserversink answering them) must not see an
// audio-only input for the few milliseconds before the video pad appears,
// or a viewer answered then would get video inactive for good.
void Impl::announce_if_ready(PublisherSession &session) {
  if (session.announced || !session.ready_to_announce(g_get_monotonic_time())) return;
  if (!session.announced.exchange(true)) {
    update_publishing();
    g_signal_emit(element_, signals[SIGNAL_PUBLISHER_CONNECTED], 0, session.id.c_str());
  }
}

void Impl::on_ice_state(Session &session) { session.update_ice_state(); }

void Impl::watchdog() {
  std::vector<std::pair<std::string, const char *>> dead;
  const gint64 now = g_get_monotonic_time();
  {
    std::lock_guard<std::mutex> l(lock_);
    for (const auto &kv : sessions_)
      if (const char *why = kv.second->gone_reason(now)) dead.emplace_back(kv.first, why);
  }
  for (const auto &d : dead) remove_session(d.first, d.second);
  std::vector<std::shared_ptr<PublisherSession>> pending;
  {
    std::lock_guard<std::mutex> l(lock_);
    for (const auto &kv : sessions_)
      if (!kv.second->announced) pending.push_back(kv.second);
  }
  for (const auto &sess : pending) announce_if_ready(*sess);
}

// ---- lifecycle ------------------------------------------------------------

bool Impl::start(std::string *error) {
  const Settings s = settings();
  std::lock_guard<std::mutex> l(lock_);
  if (s.port != 0 && !listener_) {
    HttpListener::Options o;
    o.address = s.address;
    o.port = s.port;
    o.path = "/whip";
    listener_ = HttpListener::start(element_, o, error);
    if (!listener_) return false;
    bound_port_ = listener_->port();
  }
  if (!watchdog_) {
    watchdog_ = g_timeout_source_new(1000);
    auto *weak = g_new0(GWeakRef, 1);
    g_weak_ref_init(weak, element_);
    g_source_set_callback(
        watchdog_,
        +[](gpointer data) -> gboolean {
          GstElement *e = static_cast<GstElement *>(g_weak_ref_get(static_cast<GWeakRef *>(data)));
          if (!e) return G_SOURCE_REMOVE;
          auto holder = gobj::adopt(e);
          impl_of(e)->watchdog();
          return G_SOURCE_CONTINUE;
        },
        weak, +[](gpointer data) {
          g_weak_ref_clear(static_cast<GWeakRef *>(data));
          g_free(data);
        });
    g_source_attach(watchdog_, signalling_context());
  }
  return true;
}

void Impl::stop_listener() {
  std::unique_ptr<HttpListener> l;
  GSource *w = nullptr;
  {
    std::lock_guard<std::mutex> g(lock_);
    l = std::move(listener_);
    w = std::exchange(watchdog_, nullptr);
  }
  l.reset();  // joins the listener thread outside our lock
  bound_port_ = 0;
  if (w) {
    g_source_destroy(w);
    g_source_unref(w);
  }
}

void Impl::end_all_sessions() {
  std::map<std::string, std::shared_ptr<Session>> all;
  {
    std::lock_guard<std::mutex> l(lock_);
    all.swap(sessions_);
  }
  for (auto &kv : all) {
    kv.second->closing = true;
    if (kv.second->announced)
      g_signal_emit(element_, signals[SIGNAL_PUBLISHER_DISCONNECTED], 0, kv.first.c_str());
    teardown_session(*kv.second);
  }
  update_publishing();
}

void Impl::remove_outputs() {
  std::map<std::string, std::shared_ptr<Output>> outs;
  {
    std::lock_guard<std::mutex> l(lock_);
    outs.swap(outputs_);
  }
  for (auto &kv : outs) {
    gst_pad_set_active(kv.second->ghost.get(), FALSE);
    gst_element_remove_pad(element_, kv.second->ghost.get());
  }
}

Impl::~Impl() {
  stop_listener();
  end_all_sessions();
}

}  // namespace

// ---- GObject glue -----------------------------------------------------------

struct _GstWhipwhepWhipServerSrc {
  GstBin parent;
  Impl *impl;
};

G_DEFINE_TYPE_WITH_CODE(GstWhipwhepWhipServerSrc, gst_whipwhep_whip_server_src, GST_TYPE_BIN,
                        GST_DEBUG_CATEGORY_INIT(whipserversrc_debug, "whipserversrc", 0,
                                                "WHIP server source"))
GST_ELEMENT_REGISTER_DEFINE(whipserversrc, "whipserversrc", GST_RANK_NONE,
                            GST_TYPE_WHIPWHEP_WHIP_SERVER_SRC)

namespace {
Impl *impl_of(GstElement *e) { return GST_WHIPWHEP_WHIP_SERVER_SRC(e)->impl; }
}  // namespace

static GstStaticPadTemplate video_template = GST_STATIC_PAD_TEMPLATE(
    "video_%u", GST_PAD_SRC, GST_PAD_SOMETIMES,
    GST_STATIC_CAPS("video/x-h264, stream-format=(string)byte-stream, alignment=(string)au; "
                    "video/x-vp8; video/x-vp9"));
static GstStaticPadTemplate audio_template =
    GST_STATIC_PAD_TEMPLATE("audio_%u", GST_PAD_SRC, GST_PAD_SOMETIMES,
                            GST_STATIC_CAPS("audio/x-opus"));

static void handle_request_cb(GstElement *element, GstStructure *request, GstPromise *promise) {
  impl_of(element)->handle_request(request, promise);
}

static GstStateChangeReturn change_state(GstElement *element, GstStateChange transition) {
  Impl *impl = impl_of(element);
  if (transition == GST_STATE_CHANGE_NULL_TO_READY) {
    std::string error;
    if (!impl->start(&error)) {
      const Settings s = impl->settings();
      GST_ELEMENT_ERROR(element, RESOURCE, OPEN_READ,
                        ("cannot listen on %s:%u: %s", s.address.c_str(), s.port, error.c_str()),
                        (nullptr));
      return GST_STATE_CHANGE_FAILURE;
    }
  }
  GstStateChangeReturn ret =
      GST_ELEMENT_CLASS(gst_whipwhep_whip_server_src_parent_class)->change_state(element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE) return ret;
  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED:
    case GST_STATE_CHANGE_PLAYING_TO_PAUSED:
      ret = GST_STATE_CHANGE_NO_PREROLL;  // a live source
      break;
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      impl->end_all_sessions();
      break;
    case GST_STATE_CHANGE_READY_TO_NULL:
      impl->stop_listener();
      impl->end_all_sessions();
      impl->remove_outputs();
      break;
    default:
      break;
  }
  return ret;
}

static void set_property(GObject *object, guint id, const GValue *value, GParamSpec *pspec) {
  Impl *impl = impl_of(GST_ELEMENT(object));
  std::lock_guard<std::mutex> l(impl->settings_lock_);
  Settings &s = impl->settings_;
  switch (id) {
    case PROP_ADDRESS: s.address = gobj::str_or(g_value_get_string(value), kDefaultAddress); break;
    case PROP_PORT: s.port = g_value_get_uint(value); break;
    case PROP_AUTH_TOKEN: s.auth_token = gobj::str_or(g_value_get_string(value)); break;
    case PROP_ICE_ADDRESSES: s.ice_addresses = gobj::str_or(g_value_get_string(value)); break;
    case PROP_STUN_SERVER: s.stun_server = gobj::str_or(g_value_get_string(value)); break;
    case PROP_TURN_SERVER: s.turn_server = gobj::str_or(g_value_get_string(value)); break;
    case PROP_LATENCY: s.latency = g_value_get_uint(value); break;
    case PROP_REPLACE_PUBLISHER: s.replace_publisher = g_value_get_boolean(value); break;
    case PROP_PUBLISHER_TIMEOUT: s.publisher_timeout = g_value_get_uint(value); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

static void get_property(GObject *object, guint id, GValue *value, GParamSpec *pspec) {
  Impl *impl = impl_of(GST_ELEMENT(object));
  if (id == PROP_PUBLISHING) return g_value_set_boolean(value, impl->publishing_.load());
  if (id == PROP_BOUND_PORT) return g_value_set_uint(value, impl->bound_port_.load());
  std::lock_guard<std::mutex> l(impl->settings_lock_);
  const Settings &s = impl->settings_;
  switch (id) {
    case PROP_ADDRESS: g_value_set_string(value, s.address.c_str()); break;
    case PROP_PORT: g_value_set_uint(value, s.port); break;
    case PROP_AUTH_TOKEN: g_value_set_string(value, s.auth_token.c_str()); break;
    case PROP_ICE_ADDRESSES: g_value_set_string(value, s.ice_addresses.c_str()); break;
    case PROP_STUN_SERVER: g_value_set_string(value, s.stun_server.c_str()); break;
    case PROP_TURN_SERVER: g_value_set_string(value, s.turn_server.c_str()); break;
    case PROP_LATENCY: g_value_set_uint(value, s.latency); break;
    case PROP_REPLACE_PUBLISHER: g_value_set_boolean(value, s.replace_publisher); break;
    case PROP_PUBLISHER_TIMEOUT: g_value_set_uint(value, s.publisher_timeout); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

static void finalize(GObject *object) {
  auto *self = GST_WHIPWHEP_WHIP_SERVER_SRC(object);
  delete self->impl;
  self->impl = nullptr;
  G_OBJECT_CLASS(gst_whipwhep_whip_server_src_parent_class)->finalize(object);
}

static void dispose(GObject *object) {
  auto *self = GST_WHIPWHEP_WHIP_SERVER_SRC(object);
  if (self->impl) {
    self->impl->stop_listener();
    self->impl->end_all_sessions();
  }
  G_OBJECT_CLASS(gst_whipwhep_whip_server_src_parent_class)->dispose(object);
}

static void gst_whipwhep_whip_server_src_init(GstWhipwhepWhipServerSrc *self) {
  self->impl = new Impl(GST_ELEMENT(self));
  GST_OBJECT_FLAG_SET(self, GST_ELEMENT_FLAG_SOURCE);
}

static void gst_whipwhep_whip_server_src_class_init(GstWhipwhepWhipServerSrcClass *klass) {
  GObjectClass *oc = G_OBJECT_CLASS(klass);
  GstElementClass *ec = GST_ELEMENT_CLASS(klass);
  oc->set_property = set_property;
  oc->get_property = get_property;
  oc->dispose = dispose;
  oc->finalize = finalize;
  ec->change_state = change_state;

  constexpr auto rw = GParamFlags(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                  GST_PARAM_MUTABLE_READY);
  constexpr auto ro = GParamFlags(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  props[PROP_ADDRESS] = g_param_spec_string(
      "address", "Listen address",
      "Local address the standalone WHIP listener binds to (used when port is not 0)",
      kDefaultAddress, rw);
  props[PROP_PORT] = g_param_spec_uint(
      "port", "Listen port",
      "TCP port of the standalone WHIP listener (endpoint http://address:port/whip); 0 = no "
      "listener, requests come through the handle-request action signal",
      0, 65535, 0, rw);
  props[PROP_AUTH_TOKEN] = g_param_spec_string(
      "auth-token", "Bearer token",
      "If set, WHIP POST/PATCH/DELETE must carry 'Authorization: Bearer <token>' or get 401",
      "", rw);
  props[PROP_ICE_ADDRESSES] = g_param_spec_string(
      "ice-addresses", "ICE addresses",
      "Comma-separated local IP addresses ICE may gather candidates on (empty = every "
      "non-loopback interface)",
      "", rw);
  props[PROP_STUN_SERVER] = g_param_spec_string(
      "stun-server", "STUN server", "STUN server as stun://host:port (empty = none)", "", rw);
  props[PROP_TURN_SERVER] = g_param_spec_string(
      "turn-server", "TURN server",
      "TURN server as turn(s)://user:password@host:port (empty = none)", "", rw);
  props[PROP_LATENCY] = g_param_spec_uint(
      "latency", "Jitterbuffer latency",
      "How long (ms) the receive jitterbuffer waits for late or retransmitted packets",
      0, 10000, kDefaultLatencyMs, rw);
  props[PROP_REPLACE_PUBLISHER] = g_param_spec_boolean(
      "replace-publisher", "Replace publisher",
      "A new publisher replaces the live one (e.g. a reconnecting encoder) instead of "
      "getting 409 Conflict",
      FALSE, rw);
  props[PROP_PUBLISHER_TIMEOUT] = g_param_spec_uint(
      "publisher-timeout", "Publisher timeout",
      "Seconds without RTP from a connected publisher before its session is ended "
      "(publisher-disconnected) and the live input is free again; applies to sessions "
      "created afterwards",
      1, 3600, kDefaultPublisherTimeoutS, rw);
  props[PROP_PUBLISHING] = g_param_spec_boolean(
      "publishing", "Publishing", "Whether a publisher is connected and sending media", FALSE,
      ro);
  props[PROP_BOUND_PORT] = g_param_spec_uint(
      "bound-port", "Bound port",
      "Port the standalone listener actually listens on (0 when there is no listener)", 0,
      65535, 0, ro);
  g_object_class_install_properties(oc, N_PROPS, props);

  // void handle-request (GstElement*, GstStructure *request, GstPromise *promise):
  // the embedding contract, see gst/common/README.md.
  signals[SIGNAL_HANDLE_REQUEST] = g_signal_new_class_handler(
      "handle-request", G_TYPE_FROM_CLASS(klass), GSignalFlags(G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION),
      G_CALLBACK(handle_request_cb), nullptr, nullptr, nullptr, G_TYPE_NONE, 2,
      GST_TYPE_STRUCTURE | G_SIGNAL_TYPE_STATIC_SCOPE, GST_TYPE_PROMISE);
  // Emitted from an arbitrary thread with the session id.
  signals[SIGNAL_PUBLISHER_CONNECTED] =
      g_signal_new("publisher-connected", G_TYPE_FROM_CLASS(klass), G_SIGNAL_RUN_LAST, 0,
                   nullptr, nullptr, nullptr, G_TYPE_NONE, 1, G_TYPE_STRING);
  signals[SIGNAL_PUBLISHER_DISCONNECTED] =
      g_signal_new("publisher-disconnected", G_TYPE_FROM_CLASS(klass), G_SIGNAL_RUN_LAST, 0,
                   nullptr, nullptr, nullptr, G_TYPE_NONE, 1, G_TYPE_STRING);

  gst_element_class_add_static_pad_template(ec, &video_template);
  gst_element_class_add_static_pad_template(ec, &audio_template);
  gst_element_class_set_static_metadata(
      ec, "WHIP server source", "Source/Network/WebRTC",
      "Receives one WHIP (RFC 9725) publisher over WebRTC and outputs its encoded, parsed "
      "audio and video",
      "whipwhep");
}
