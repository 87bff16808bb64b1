// whepserversink — WHEP server side: one encoded input, many viewers.
//
// Pads: request sink pads `video_%u` (H.264 byte-stream/avc AU, VP8, VP9, or
// application/x-rtp) and `audio_%u` (Opus or application/x-rtp). Each input
// is payloaded ONCE (rtpvp8pay / rtpvp9pay / rtph264pay config-interval=-1
// aggregate-mode=zero-latency / rtpopuspay, mtu 1200) and handed to a Fanout
// (fanout.h) that feeds every viewer's sendonly webrtcbin without a tee, a
// queue or a thread per viewer.
// Timing: media goes out as it arrives, never waiting on the clock (one
// wait would hold every viewer of a sender thread): feed live media, or put
// `clocksync` in front of a non-live source (a file) to pace it.
// Files: this one is the element (GObject glue, properties, pads, request
// routing, the viewer map and watchdog tick); input-payloader.h chooses the
// payloader; viewer-session.h is one viewer (webrtcbin, answer, connection
// state, stats); viewer-plan.h maps an offer onto the inputs.
//
// Viewers (HTTP through the `handle-request` action signal, see
// gst/common/README.md, or the element's own listener on
// http://address:port/whep when `port` != 0):
//  * POST application/sdp recvonly offer -> 201 + answer with the stream's
//    codec at the payload type numbers THAT viewer offered (the PT is
//    rewritten per viewer on a copy of the RTP header only).
//    415 wrong content type, 400 malformed SDP, 422 sendonly/sendrecv offer
//    or no codec the viewer can receive, 503 + Retry-After over max-viewers.
//  * Before a publisher exists (no caps on an input pad yet) the codec
//    cannot be chosen: POST gets 503, `Retry-After: 2`, reason "no publisher
//    yet". Once caps are known, viewers stay connected while the publisher
//    stops or reconnects on the same pads (EOS is not forwarded to viewers):
//    media resumes with its next buffers and a keyframe request.
//  * DELETE /whep/<session> -> 200, unknown -> 404. PATCH trickle -> 204.
//  * A viewer that vanished without DELETE is removed: ICE failed, ICE
//    disconnected for 10 s, DTLS failed, never connected within 20 s of its
//    answer, or no RTCP from it for `viewer-timeout` seconds (default 15).
// Media: with direct-send (default) each viewer's packets skip its webrtcbin
// and go from the fan-out's sender thread to its ICE socket, SRTP-protected
// with the keys webrtcbin negotiated (direct-send.h); webrtcbin keeps ICE,
// DTLS and RTCP. A sender thread hands the packets of one batch for all its
// viewers to the kernel in one io_uring submission (send-batch.h; one
// sendmmsg per viewer without io_uring or with WHIPWHEP_IO_URING=0).
// ICE: viewers share libnice agents, `ice-sessions-per-agent` (32) to one
// agent and its thread (shared-ice.h); each keeps its own ICE stream.
// Release: with `release-webrtcbin` (default), direct send and a shared
// agent, a viewer's webrtcbin is stopped and released once the viewer's
// first SRTCP shows its DTLS handshake is over; its RTCP (SRs, reports,
// PLI/FIR, NACK, BYE) then runs on its ICE agent's thread (direct-rtcp.h):
// no element and no thread per viewer. A viewer's RTCP BYE removes it.
// Feedback: NACK -> retransmission from the input's shared history on the
// direct path, within a per-viewer budget (retransmit-guard.h; from
// webrtcbin's rtprtxsend as RTX without direct-send; do-nack on video
// transceivers); PLI/FIR from any viewer and every join ->
// one upstream GstForceKeyUnit per input, at most one per 300 ms.
// Stats: action signal `get-viewer-stats` (session id) -> GstStructure
// "whep-viewer-stats" with bytes-sent, packets-sent (uint64, from the
// fan-out), nacks-received, plis-received (uint, from the viewer's
// RTCP), rtt (double seconds, -1 unknown), connected (boolean),
// direct-send (boolean: this viewer's media skips its webrtcbin),
// packets-resent and packets-dropped (uint64, direct path: retransmitted
// on NACK; not sent because its socket buffer was full),
// retransmissions-refused (uint64: NACKed packets not resent, asked again
// within a round trip, too recent, or over the budget), udp-gso (boolean,
// direct path: one GSO train per frame; false once the kernel refused GSO
// on this viewer's route, then one datagram per packet), rtcp-sent
// (uint64, direct path: webrtcbin's SRTCP packets, its SRs, protected and
// sent there instead of through libsrtp and nicesink; after release the
// SRs built there), webrtcbin-released (boolean), rtcp-received and
// rtcp-rejected (uint64, after release: SRTCP packets from the viewer that
// were authentic, and that failed authentication or replay checks);
// NULL for an unknown session. Synchronous, no promise involved.
#include "whepserversink.h"

#include "shared-ice.h"

#include <gst/rtp/rtp.h>
#include <gst/sdp/sdp.h>
#include <gst/webrtc/webrtc.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "elements.h"
#include "fanout.h"
#include "gobj.h"
#include "http-listener.h"
#include "http-types.h"
#include "offer-checks.h"
#include "sdpfrag.h"
#include "input-payloader.h"
#include "ice.h"
#include "signalling-context.h"
#include "webrtc-negotiation.h"
#include "viewer-plan.h"
#include "viewer-session.h"

// Shared with viewer-session.cpp: one category for the element.
GST_DEBUG_CATEGORY(whepserversink_debug);
#define GST_CAT_DEFAULT whepserversink_debug

namespace {
class Impl;
}

struct _GstWhipwhepWhepServerSink {
  GstBin parent;
  Impl *impl;
};

enum {
  PROP_0,
  PROP_ADDRESS,
  PROP_PORT,
  PROP_AUTH_TOKEN,
  PROP_ICE_ADDRESSES,
  PROP_STUN_SERVER,
  PROP_TURN_SERVER,
  PROP_MAX_VIEWERS,
  PROP_VIEWER_COUNT,
  PROP_LATENCY,
  PROP_VIEWER_TIMEOUT,
  PROP_FANOUT_THREADS,
  PROP_DIRECT_SEND,
  PROP_ICE_SESSIONS_PER_AGENT,
  PROP_RELEASE_WEBRTCBIN,
  N_PROPS
};
static GParamSpec *props[N_PROPS];

enum { SIGNAL_VIEWER_ADDED, SIGNAL_VIEWER_REMOVED, SIGNAL_HANDLE_REQUEST, SIGNAL_GET_VIEWER_STATS,
       N_SIGNALS };
static guint signals[N_SIGNALS];

namespace {

using namespace whipwhep;

constexpr guint kDefaultLatency = 40;
constexpr guint kDefaultViewerTimeout = 15;

struct Settings {
  std::string address = "127.0.0.1";
  guint port = 0;
  std::string auth_token;
  std::string ice_addresses;
  std::string stun_server;
  std::string turn_server;
  guint max_viewers = 0;
  guint latency = kDefaultLatency;
  guint viewer_timeout = kDefaultViewerTimeout;
  guint fanout_threads = 0;
  bool direct_send = true;
  guint ice_sessions_per_agent = kDefaultIceSessionsPerAgent;
  bool release_webrtcbin = true;
};

using Viewer = ViewerSession;

class Impl {
 public:
  explicit Impl(GstWhipwhepWhepServerSink *self) : self_(self) {}
  ~Impl() { stop_housekeeping(); }

  GstElement *element() const { return GST_ELEMENT(self_); }

  std::mutex settings_lock;
  Settings settings;

  // ---- inputs -------------------------------------------------------------
  GstPad *request_pad(GstPadTemplate *templ, const gchar *name);
  void release_pad(GstPad *pad);
  void on_input_caps(const std::shared_ptr<Input> &in, GstCaps *caps);

  // ---- HTTP ---------------------------------------------------------------
  void handle_request(const GstStructure *s, GstPromise *promise);
  GstStructure *viewer_stats(const std::string &id);
  guint viewer_count() {
    std::lock_guard<std::mutex> g(lock_);
    return guint(viewers_.size());
  }

  // ---- life cycle ---------------------------------------------------------
  bool start(std::string *error);
  void stop();
  void remove_all_viewers();

 private:
  HttpResponse post(const HttpRequest &req, GstPromise *promise, bool *deferred);
  HttpResponse patch(const HttpRequest &req);
  void answered(const std::shared_ptr<Viewer> &v, bool ok, const std::string &text,
                GstPromise *promise);
  void schedule_remove(const std::string &id, const char *why);
  void schedule_release(const std::string &id);
  bool remove_viewer(const std::string &id, const char *why);
  void teardown(const std::shared_ptr<Viewer> &v);
  void housekeeping();
  void stop_housekeeping();
  IceSettings ice_settings();

  GstWhipwhepWhepServerSink *self_;
  std::mutex lock_;  // inputs_, viewers_, serials
  std::vector<std::shared_ptr<Input>> inputs_;
  std::map<std::string, std::shared_ptr<Viewer>> viewers_;
  guint video_serial_ = 0, audio_serial_ = 0;
  std::unique_ptr<HttpListener> listener_;
  GSource *timer_ = nullptr;  // housekeeping, on the signalling context
};


// ---- inputs ---------------------------------------------------------------

struct InputProbeData {
  Impl *impl;
  std::weak_ptr<Input> input;
};

GstPad *Impl::request_pad(GstPadTemplate *templ, const gchar *name) {
  const bool video = g_str_has_prefix(GST_PAD_TEMPLATE_NAME_TEMPLATE(templ), "video");
  std::string pad_name;
  {
    std::lock_guard<std::mutex> g(lock_);
    if (name && *name)
      pad_name = name;
    else
      pad_name = std::string(video ? "video_" : "audio_") +
                 std::to_string(video ? video_serial_++ : audio_serial_++);
  }
  auto in = std::make_shared<Input>();
  in->kind = video ? MediaKind::Video : MediaKind::Audio;
  guint threads;
  {
    std::lock_guard<std::mutex> g(settings_lock);
    threads = settings.fanout_threads;
  }
  in->fanout = std::make_unique<Fanout>(pad_name, threads);
  in->ghost = gobj::sink(gst_ghost_pad_new_no_target_from_template(pad_name.c_str(), templ));
  if (!in->ghost) return nullptr;

  // The payloader is chosen by the caps that arrive.
  gst_pad_add_probe(
      in->ghost.get(), GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM,
      +[](GstPad *, GstPadProbeInfo *info, gpointer data) -> GstPadProbeReturn {
        auto *d = static_cast<InputProbeData *>(data);
        GstEvent *ev = GST_PAD_PROBE_INFO_EVENT(info);
        if (GST_EVENT_TYPE(ev) == GST_EVENT_CAPS) {
          GstCaps *caps = nullptr;
          gst_event_parse_caps(ev, &caps);
          if (auto in = d->input.lock()) d->impl->on_input_caps(in, caps);
        }
        return GST_PAD_PROBE_OK;
      },
      new InputProbeData{this, in}, +[](gpointer d) { delete static_cast<InputProbeData *>(d); });
  answer_caps_queries_from_template(in->ghost.get());
  {
    std::lock_guard<std::mutex> g(lock_);
    inputs_.push_back(in);
  }
  gst_element_add_pad(element(), in->ghost.get());
  return in->ghost.get();
}

void Impl::on_input_caps(const std::shared_ptr<Input> &in, GstCaps *caps) {
  if (!caps || gst_caps_get_size(caps) == 0) return;
  const std::string name = gst_structure_get_name(gst_caps_get_structure(caps, 0));
  if (in->payloader && in->payloader_caps_name == name) return;
  if (in->payloader) {
    // A different codec: viewers negotiated the old one and cannot follow
    // without renegotiation. They are dropped and may re-POST.
    std::vector<std::string> ids;
    {
      std::lock_guard<std::mutex> g(lock_);
      for (auto &kv : viewers_) ids.push_back(kv.first);
    }
    for (auto &id : ids) schedule_remove(id, "input codec changed");
    gobj::Ref<GstPad> src = gobj::adopt(gst_element_get_static_pad(in->payloader.get(), "src"));
    gst_pad_unlink(src.get(), in->fanout->sink_pad());
    gst_ghost_pad_set_target(GST_GHOST_PAD(in->ghost.get()), nullptr);
    gst_element_set_locked_state(in->payloader.get(), TRUE);
    gst_element_set_state(in->payloader.get(), GST_STATE_NULL);
    gst_bin_remove(GST_BIN(element()), in->payloader.get());
    in->payloader.reset();
  }
  const char *factory = nullptr;
  gobj::Ref<GstElement> pay = make_payloader(name, &factory);
  if (!pay) {
    GST_ELEMENT_ERROR(element(), CORE, MISSING_PLUGIN,
                      ("no payloader for %s (%s missing?)", name.c_str(), factory ? factory : "none"),
                      (nullptr));
    return;
  }
  gst_bin_add(GST_BIN(element()), pay.get());
  gobj::Ref<GstPad> src = gobj::adopt(gst_element_get_static_pad(pay.get(), "src"));
  gobj::Ref<GstPad> sink = gobj::adopt(gst_element_get_static_pad(pay.get(), "sink"));
  gst_pad_link_full(src.get(), in->fanout->sink_pad(), GST_PAD_LINK_CHECK_NOTHING);
  gst_ghost_pad_set_target(GST_GHOST_PAD(in->ghost.get()), sink.get());
  gst_element_sync_state_with_parent(pay.get());
  in->payloader = pay;
  in->payloader_caps_name = name;
  GST_INFO_OBJECT(element(), "%s: %s payloaded by %s", GST_PAD_NAME(in->ghost.get()), name.c_str(),
                  factory);
}

void Impl::release_pad(GstPad *pad) {
  std::shared_ptr<Input> in;
  std::vector<std::shared_ptr<Viewer>> viewers;
  {
    std::lock_guard<std::mutex> g(lock_);
    for (auto it = inputs_.begin(); it != inputs_.end(); ++it)
      if ((*it)->ghost.get() == pad) {
        in = *it;
        inputs_.erase(it);
        break;
      }
    for (auto &kv : viewers_) viewers.push_back(kv.second);
  }
  if (!in) return;
  // Viewers keep their other streams; this one ends for them.
  for (auto &v : viewers) v->drop_input(in);
  if (in->payloader) {
    gst_ghost_pad_set_target(GST_GHOST_PAD(in->ghost.get()), nullptr);
    gst_element_set_locked_state(in->payloader.get(), TRUE);
    gst_element_set_state(in->payloader.get(), GST_STATE_NULL);
    // At dispose the bin may have dropped its children already.
    if (GST_OBJECT_PARENT(in->payloader.get()) == GST_OBJECT(element()))
      gst_bin_remove(GST_BIN(element()), in->payloader.get());
  }
  gst_element_remove_pad(element(), pad);
}

// ---- HTTP -------------------------------------------------------------------

IceSettings Impl::ice_settings() {
  std::lock_guard<std::mutex> g(settings_lock);
  IceSettings ice;
  ice.local_addresses = split_list(settings.ice_addresses);
  ice.stun_server = settings.stun_server;
  if (!settings.turn_server.empty()) ice.turn_servers.push_back(settings.turn_server);
  return ice;
}

void Impl::handle_request(const GstStructure *s, GstPromise *promise) {
  HttpRequest req;
  if (!request_from_structure(s, &req)) {
    reply(promise, HttpResponse::text(400, "not a whipwhep/request structure"));
    return;
  }
  std::string token;
  {
    std::lock_guard<std::mutex> g(settings_lock);
    token = settings.auth_token;
  }
  if (!token.empty() && !bearer_matches(req.authorization, token)) {
    HttpResponse r = HttpResponse::text(401, "missing or wrong bearer token");
    r.headers.push_back({"WWW-Authenticate", "Bearer"});
    reply(promise, r);
    return;
  }
  if (req.method == "POST" && req.session.empty()) {
    bool deferred = false;
    HttpResponse r = post(req, promise, &deferred);
    if (!deferred) reply(promise, r);
  } else if (req.method == "DELETE" && !req.session.empty()) {
    if (remove_viewer(req.session, "DELETE"))
      reply(promise, HttpResponse::text(200, "session ended"));
    else
      reply(promise, HttpResponse::text(404, "no such session"));
  } else if (req.method == "PATCH" && !req.session.empty()) {
    reply(promise, patch(req));
  } else {
    HttpResponse r = HttpResponse::text(405, "method " + req.method + " not allowed here");
    r.headers.push_back({"Allow", req.session.empty() ? "POST, OPTIONS" : "PATCH, DELETE, OPTIONS"});
    reply(promise, r);
  }
}

HttpResponse Impl::post(const HttpRequest &req, GstPromise *promise, bool *deferred) {
  if (req.content_type != "application/sdp")
    return HttpResponse::text(415, "the offer must be sent as application/sdp, not '" +
                                       req.content_type + "'");
  std::string why;
  gobj::Unique<GstSDPMessage> offer(parse_sdp(req.body_string(), &why));
  if (!offer) return HttpResponse::text(400, why);
  if (guint status = check_offer(offer.get(), &why)) return HttpResponse::text(status, why);

  std::vector<StreamInfo> streams;
  std::vector<std::shared_ptr<Input>> inputs;
  size_t viewers;
  {
    std::lock_guard<std::mutex> g(lock_);
    inputs = inputs_;
    viewers = viewers_.size();
  }
  bool all_known = !inputs.empty();
  for (auto &in : inputs) {
    streams.push_back({in->kind, in->fanout->caps()});
    if (!streams.back().caps) all_known = false;
  }
  if (!all_known) {
    HttpResponse r = HttpResponse::text(503, "no publisher yet: the stream's codec is not known");
    r.headers.push_back({"Retry-After", "2"});
    return r;
  }
  guint max_viewers, latency;
  bool direct_send, release_webrtcbin;
  guint ice_sessions_per_agent;
  {
    std::lock_guard<std::mutex> g(settings_lock);
    max_viewers = settings.max_viewers;
    latency = settings.latency;
    direct_send = settings.direct_send;
    release_webrtcbin = settings.release_webrtcbin;
    ice_sessions_per_agent = settings.ice_sessions_per_agent;
  }
  if (max_viewers && viewers >= max_viewers) {
    HttpResponse r = HttpResponse::text(
        503, "viewer limit reached (max-viewers=" + std::to_string(max_viewers) + ")");
    r.headers.push_back({"Retry-After", "5"});
    return r;
  }
  ViewerPlan plan = plan_viewer(offer.get(), streams);
  if (plan.status) return HttpResponse::text(plan.status, plan.reason);

  Impl *impl = this;
  ViewerSession::Hooks hooks;
  hooks.schedule_remove = [impl](const std::string &id, const char *why) {
    impl->schedule_remove(id, why);
  };
  hooks.schedule_release = [impl](const std::string &id) { impl->schedule_release(id); };
  auto v = ViewerSession::create(random_id_hex128(), latency, ice_settings(),
                                 ice_sessions_per_agent, direct_send, release_webrtcbin,
                                 std::move(hooks));
  if (!v) return HttpResponse::text(500, "webrtcbin is not installed");
  v->set_remote_ufrag(offer_ice_ufrag(offer.get()));
  {
    std::lock_guard<std::mutex> g(lock_);
    if (max_viewers && viewers_.size() >= max_viewers) {
      HttpResponse r = HttpResponse::text(
          503, "viewer limit reached (max-viewers=" + std::to_string(max_viewers) + ")");
      r.headers.push_back({"Retry-After", "5"});
      return r;
    }
    viewers_[v->id()] = v;
  }
  g_object_notify_by_pspec(G_OBJECT(self_), props[PROP_VIEWER_COUNT]);
  gst_bin_add(GST_BIN(element()), v->webrtcbin().get());
  gst_element_sync_state_with_parent(v->webrtcbin().get());

  auto held = gobj::ref(promise);
  auto legs_plan = std::make_shared<ViewerPlan>(std::move(plan));
  std::weak_ptr<Viewer> weak = v;
  PrepareAnswer prepare = [weak, legs_plan, inputs]() -> std::string {
    auto v = weak.lock();
    if (!v) return "the viewer was removed during negotiation";
    return v->prepare_answer(*legs_plan, inputs);
  };
  answer_offer(v->webrtcbin().get(), offer.release(), prepare,
               [impl, weak, held](bool ok, std::string text) {
                 auto v = weak.lock();
                 if (!v) {
                   reply(held.get(), HttpResponse::text(503, "the viewer was removed during negotiation"));
                   return;
                 }
                 impl->answered(v, ok, text, held.get());
               });
  *deferred = true;
  return {};
}

void Impl::answered(const std::shared_ptr<Viewer> &v, bool ok, const std::string &text,
                    GstPromise *promise) {
  {
    std::lock_guard<std::mutex> g(lock_);
    if (!viewers_.count(v->id())) {
      reply(promise, HttpResponse::text(503, "the viewer was removed during negotiation"));
      return;
    }
  }
  if (ok && text.find("a=sendonly") == std::string::npos) {
    ok = false;
  }
  if (!ok) {
    GST_WARNING_OBJECT(element(), "viewer %s: cannot answer: %s", v->id().c_str(), text.c_str());
    reply(promise, HttpResponse::text(500, "could not answer the offer"));
    schedule_remove(v->id(), "negotiation failed");
    return;
  }
  v->watch_transport();
  HttpResponse r;
  r.status = 201;
  r.content_type = "application/sdp";
  r.body = text;
  r.session = v->id();
  reply(promise, r);
  GST_INFO_OBJECT(element(), "viewer %s answered", v->id().c_str());
  g_signal_emit(self_, signals[SIGNAL_VIEWER_ADDED], 0, v->id().c_str());
}

HttpResponse Impl::patch(const HttpRequest &req) {
  std::shared_ptr<Viewer> v;
  {
    std::lock_guard<std::mutex> g(lock_);
    auto it = viewers_.find(req.session);
    if (it != viewers_.end()) v = it->second;
  }
  if (!v) return HttpResponse::text(404, "no such session");
  if (req.content_type != "application/trickle-ice-sdpfrag")
    return HttpResponse::text(415, "PATCH takes application/trickle-ice-sdpfrag");
  const std::string body = req.body_string();
  // Only a changed ufrag is a restart: an RFC 8840 end-of-candidates fragment
  // repeats the session's own ufrag and is plain trickle.
  const SdpFrag frag = parse_sdpfrag(body);
  if (!frag.ice_ufrag.empty() && frag.ice_ufrag != v->remote_ufrag())
    return HttpResponse::text(422, "ICE restart is not supported; trickle ICE is");
  v->add_remote_candidates(body);
  HttpResponse r;
  r.status = 204;
  return r;
}

// ---- viewer removal ---------------------------------------------------------

void Impl::schedule_remove(const std::string &id, const char *why) {
  struct Job {
    Impl *impl;
    std::string id, why;
  };
  gst_element_call_async(
      element(),
      +[](GstElement *, gpointer data) {
        auto *j = static_cast<Job *>(data);
        j->impl->remove_viewer(j->id, j->why.c_str());
      },
      new Job{this, id, why}, +[](gpointer d) { delete static_cast<Job *>(d); });
}

bool Impl::remove_viewer(const std::string &id, const char *why) {
  std::shared_ptr<Viewer> v;
  {
    std::lock_guard<std::mutex> g(lock_);
    auto it = viewers_.find(id);
    if (it == viewers_.end()) return false;
    v = it->second;
    viewers_.erase(it);
  }
  GST_INFO_OBJECT(element(), "removing viewer %s: %s", id.c_str(), why);
  g_object_notify_by_pspec(G_OBJECT(self_), props[PROP_VIEWER_COUNT]);
  // Off the calling thread (HTTP or a webrtcbin callback): stopping a
  // webrtcbin takes a while and must not happen in its own callbacks.
  gst_element_call_async(
      element(),
      +[](GstElement *, gpointer data) {
        auto *job = static_cast<std::pair<Impl *, std::shared_ptr<Viewer>> *>(data);
        job->first->teardown(job->second);
      },
      new std::pair<Impl *, std::shared_ptr<Viewer>>(this, v),
      +[](gpointer d) { delete static_cast<std::pair<Impl *, std::shared_ptr<Viewer>> *>(d); });
  return true;
}

void Impl::schedule_release(const std::string &id) {
  struct Job {
    Impl *impl;
    std::string id;
  };
  gst_element_call_async(
      element(),
      +[](GstElement *, gpointer data) {
        auto *j = static_cast<Job *>(data);
        std::shared_ptr<Viewer> v;
        {
          std::lock_guard<std::mutex> g(j->impl->lock_);
          auto it = j->impl->viewers_.find(j->id);
          if (it != j->impl->viewers_.end()) v = it->second;
        }
        if (!v) return;
        if (gobj::Ref<GstElement> webrtcbin = v->release_webrtcbin())
          gst_bin_remove(GST_BIN(j->impl->element()), webrtcbin.get());
      },
      new Job{this, id}, +[](gpointer d) { delete static_cast<Job *>(d); });
}

void Impl::teardown(const std::shared_ptr<Viewer> &v) {
  gobj::Ref<GstElement> webrtcbin;  // stays null if it was released before
  if (!v->stop(&webrtcbin)) return;
  if (webrtcbin) gst_bin_remove(GST_BIN(element()), webrtcbin.get());
  GST_INFO_OBJECT(element(), "viewer %s released", v->id().c_str());
  g_signal_emit(self_, signals[SIGNAL_VIEWER_REMOVED], 0, v->id().c_str());
}

void Impl::remove_all_viewers() {
  std::map<std::string, std::shared_ptr<Viewer>> all;
  {
    std::lock_guard<std::mutex> g(lock_);
    all.swap(viewers_);
  }
  if (!all.empty()) g_object_notify_by_pspec(G_OBJECT(self_), props[PROP_VIEWER_COUNT]);
  for (auto &kv : all) teardown(kv.second);
}

void Impl::housekeeping() {
  const gint64 now = g_get_monotonic_time();
  gint64 rtcp_timeout;
  {
    std::lock_guard<std::mutex> g(settings_lock);
    rtcp_timeout = gint64(settings.viewer_timeout) * G_USEC_PER_SEC;
  }
  std::vector<std::pair<std::string, const char *>> gone;
  {
    std::lock_guard<std::mutex> g(lock_);
    for (auto &kv : viewers_)
      if (const char *why = kv.second->gone_reason(now, rtcp_timeout))
        gone.push_back({kv.first, why});
  }
  for (auto &g : gone) remove_viewer(g.first, g.second);
}

bool Impl::start(std::string *error) {
  Settings s;
  {
    std::lock_guard<std::mutex> g(settings_lock);
    s = settings;
  }
  if (s.port != 0) {
    HttpListener::Options opts;
    opts.address = s.address;
    opts.port = s.port;
    opts.path = "/whep";
    listener_ = HttpListener::start(element(), opts, error);
    if (!listener_) return false;
  }
  GSource *timer = g_timeout_source_new(1000);
  g_source_set_callback(
      timer,
      +[](gpointer data) -> gboolean {
        static_cast<Impl *>(data)->housekeeping();
        return G_SOURCE_CONTINUE;
      },
      this, nullptr);
  g_source_attach(timer, signalling_context());
  timer_ = timer;
  return true;
}

void Impl::stop_housekeeping() {
  if (!timer_) return;
  GSource *t = std::exchange(timer_, nullptr);
  // Destroyed on its own thread: a tick in progress finishes first.
  run_on_signalling_thread_sync([t]() { g_source_destroy(t); }, 5000);
  g_source_unref(t);
}

void Impl::stop() {
  listener_.reset();
  stop_housekeeping();
  remove_all_viewers();
}

GstStructure *Impl::viewer_stats(const std::string &id) {
  std::shared_ptr<Viewer> v;
  {
    std::lock_guard<std::mutex> g(lock_);
    auto it = viewers_.find(id);
    if (it != viewers_.end()) v = it->second;
  }
  return v ? v->stats() : nullptr;
}

}  // namespace

// ---- GObject glue -------------------------------------------------------------

G_DEFINE_TYPE_WITH_CODE(GstWhipwhepWhepServerSink, gst_whipwhep_whep_server_sink, GST_TYPE_BIN,
                        GST_DEBUG_CATEGORY_INIT(whepserversink_debug, "whepserversink", 0,
                                                "WHEP server: fan-out to viewers"))
GST_ELEMENT_REGISTER_DEFINE(whepserversink, "whepserversink", GST_RANK_NONE,
                            GST_TYPE_WHIPWHEP_WHEP_SERVER_SINK)

static GstStaticPadTemplate video_template = GST_STATIC_PAD_TEMPLATE(
    "video_%u", GST_PAD_SINK, GST_PAD_REQUEST,
    GST_STATIC_CAPS("video/x-h264, stream-format=(string){ byte-stream, avc }, alignment=(string)au; "
                    "video/x-vp8; video/x-vp9; application/x-rtp, media=(string)video"));
static GstStaticPadTemplate audio_template = GST_STATIC_PAD_TEMPLATE(
    "audio_%u", GST_PAD_SINK, GST_PAD_REQUEST,
    GST_STATIC_CAPS("audio/x-opus; application/x-rtp, media=(string)audio"));

static void gst_whipwhep_whep_server_sink_init(GstWhipwhepWhepServerSink *self) {
  self->impl = new Impl(self);
}

static void gst_whipwhep_whep_server_sink_finalize(GObject *object) {
  auto *self = GST_WHIPWHEP_WHEP_SERVER_SINK(object);
  delete self->impl;
  self->impl = nullptr;
  G_OBJECT_CLASS(gst_whipwhep_whep_server_sink_parent_class)->finalize(object);
}

static void set_property(GObject *object, guint id, const GValue *value, GParamSpec *pspec) {
  Impl *impl = GST_WHIPWHEP_WHEP_SERVER_SINK(object)->impl;
  std::lock_guard<std::mutex> g(impl->settings_lock);
  Settings &s = impl->settings;
  switch (id) {
    case PROP_ADDRESS: s.address = gobj::str_or(g_value_get_string(value), "127.0.0.1"); break;
    case PROP_PORT: s.port = g_value_get_uint(value); break;
    case PROP_AUTH_TOKEN: s.auth_token = gobj::str_or(g_value_get_string(value)); break;
    case PROP_ICE_ADDRESSES: s.ice_addresses = gobj::str_or(g_value_get_string(value)); break;
    case PROP_STUN_SERVER: s.stun_server = gobj::str_or(g_value_get_string(value)); break;
    case PROP_TURN_SERVER: s.turn_server = gobj::str_or(g_value_get_string(value)); break;
    case PROP_MAX_VIEWERS: s.max_viewers = g_value_get_uint(value); break;
    case PROP_LATENCY: s.latency = g_value_get_uint(value); break;
    case PROP_VIEWER_TIMEOUT: s.viewer_timeout = g_value_get_uint(value); break;
    case PROP_FANOUT_THREADS: s.fanout_threads = g_value_get_uint(value); break;
    case PROP_DIRECT_SEND: s.direct_send = g_value_get_boolean(value); break;
    case PROP_ICE_SESSIONS_PER_AGENT: s.ice_sessions_per_agent = g_value_get_uint(value); break;
    case PROP_RELEASE_WEBRTCBIN: s.release_webrtcbin = g_value_get_boolean(value); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

static void get_property(GObject *object, guint id, GValue *value, GParamSpec *pspec) {
  Impl *impl = GST_WHIPWHEP_WHEP_SERVER_SINK(object)->impl;
  if (id == PROP_VIEWER_COUNT) {
    g_value_set_uint(value, impl->viewer_count());
    return;
  }
  std::lock_guard<std::mutex> g(impl->settings_lock);
  const Settings &s = impl->settings;
  switch (id) {
    case PROP_ADDRESS: g_value_set_string(value, s.address.c_str()); break;
    case PROP_PORT: g_value_set_uint(value, s.port); break;
    case PROP_AUTH_TOKEN: g_value_set_string(value, s.auth_token.c_str()); break;
    case PROP_ICE_ADDRESSES: g_value_set_string(value, s.ice_addresses.c_str()); break;
    case PROP_STUN_SERVER: g_value_set_string(value, s.stun_server.c_str()); break;
    case PROP_TURN_SERVER: g_value_set_string(value, s.turn_server.c_str()); break;
    case PROP_MAX_VIEWERS: g_value_set_uint(value, s.max_viewers); break;
    case PROP_LATENCY: g_value_set_uint(value, s.latency); break;
    case PROP_VIEWER_TIMEOUT: g_value_set_uint(value, s.viewer_timeout); break;
    case PROP_FANOUT_THREADS: g_value_set_uint(value, s.fanout_threads); break;
    case PROP_DIRECT_SEND: g_value_set_boolean(value, s.direct_send); break;
    case PROP_ICE_SESSIONS_PER_AGENT: g_value_set_uint(value, s.ice_sessions_per_agent); break;
    case PROP_RELEASE_WEBRTCBIN: g_value_set_boolean(value, s.release_webrtcbin); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

static GstStateChangeReturn change_state(GstElement *element, GstStateChange transition) {
  Impl *impl = GST_WHIPWHEP_WHEP_SERVER_SINK(element)->impl;
  if (transition == GST_STATE_CHANGE_NULL_TO_READY) {
    std::string error;
    if (!impl->start(&error)) {
      guint port;
      {
        std::lock_guard<std::mutex> g(impl->settings_lock);
        port = impl->settings.port;
      }
      GST_ELEMENT_ERROR(element, RESOURCE, OPEN_READ,
                        ("cannot listen for WHEP requests on port %u: %s", port, error.c_str()),
                        (nullptr));
      return GST_STATE_CHANGE_FAILURE;
    }
  }
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) impl->remove_all_viewers();
  GstStateChangeReturn ret =
      GST_ELEMENT_CLASS(gst_whipwhep_whep_server_sink_parent_class)->change_state(element, transition);
  if (transition == GST_STATE_CHANGE_READY_TO_NULL ||
      (transition == GST_STATE_CHANGE_NULL_TO_READY && ret == GST_STATE_CHANGE_FAILURE))
    impl->stop();
  return ret;
}

static GstPad *request_new_pad(GstElement *element, GstPadTemplate *templ, const gchar *name,
                               const GstCaps *) {
  return GST_WHIPWHEP_WHEP_SERVER_SINK(element)->impl->request_pad(templ, name);
}

static void release_pad(GstElement *element, GstPad *pad) {
  GST_WHIPWHEP_WHEP_SERVER_SINK(element)->impl->release_pad(pad);
}

static void handle_request_cb(GstWhipwhepWhepServerSink *self, GstStructure *request,
                              GstPromise *promise) {
  self->impl->handle_request(request, promise);
}

static GstStructure *get_viewer_stats_cb(GstWhipwhepWhepServerSink *self, const gchar *session) {
  return self->impl->viewer_stats(gobj::str_or(session));
}

// Every viewer is a webrtcbin of some thirty elements, each posting
// state-changed and stream-status messages as it starts and stops: hundreds
// per viewer, all funnelled into the one top-level bus. GstBus queues them
// in a lock-free queue whose writers spin until the writers ahead of them
// are done, so with dozens of viewers joining and leaving at once on two
// cores the posting threads spun for seconds (measured: the server's main
// thread, both fan-out senders and every viewer thread inside
// gst_atomic_queue_push, WHEP offers unanswered for over 10 s). Nothing
// outside this element acts on its viewers' internal state changes or
// threads, so those two kinds stop here; everything else (errors, warnings,
// async and latency messages the bin machinery needs) passes as usual.
static void handle_message(GstBin *bin, GstMessage *msg) {
  const GstMessageType type = GST_MESSAGE_TYPE(msg);
  if ((type == GST_MESSAGE_STATE_CHANGED || type == GST_MESSAGE_STREAM_STATUS) &&
      GST_MESSAGE_SRC(msg) != GST_OBJECT(bin)) {
    gst_message_unref(msg);
    return;
  }
  GST_BIN_CLASS(gst_whipwhep_whep_server_sink_parent_class)->handle_message(bin, msg);
}

static void gst_whipwhep_whep_server_sink_class_init(GstWhipwhepWhepServerSinkClass *klass) {
  GObjectClass *oclass = G_OBJECT_CLASS(klass);
  GstElementClass *eclass = GST_ELEMENT_CLASS(klass);
  oclass->finalize = gst_whipwhep_whep_server_sink_finalize;
  oclass->set_property = set_property;
  oclass->get_property = get_property;
  eclass->change_state = change_state;
  eclass->request_new_pad = request_new_pad;
  eclass->release_pad = release_pad;
  GST_BIN_CLASS(klass)->handle_message = handle_message;

  const auto rw = GParamFlags(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  const auto rw_playing =
      GParamFlags(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING);
  props[PROP_ADDRESS] = g_param_spec_string(
      "address", "Address", "Local address the standalone WHEP listener binds to (with port != 0)",
      "127.0.0.1", rw);
  props[PROP_PORT] = g_param_spec_uint(
      "port", "Port",
      "TCP port of the standalone listener serving http://address:port/whep; 0 = no listener, "
      "requests come through the handle-request action signal",
      0, 65535, 0, rw);
  props[PROP_AUTH_TOKEN] = g_param_spec_string(
      "auth-token", "Auth token",
      "Bearer token viewers must send (Authorization: Bearer <token>); empty = open playback",
      "", rw_playing);
  props[PROP_ICE_ADDRESSES] = g_param_spec_string(
      "ice-addresses", "ICE addresses",
      "Comma-separated local addresses ICE may gather on for viewers; empty = every interface "
      "except loopback",
      "", rw_playing);
  props[PROP_STUN_SERVER] = g_param_spec_string(
      "stun-server", "STUN server", "STUN server for viewers' ICE (stun://host:port)", "",
      rw_playing);
  props[PROP_TURN_SERVER] = g_param_spec_string(
      "turn-server", "TURN server", "TURN server for viewers' ICE (turn(s)://user:pass@host:port)",
      "", rw_playing);
  props[PROP_MAX_VIEWERS] = g_param_spec_uint(
      "max-viewers", "Max viewers",
      "Most viewers served at once; beyond it a POST gets 503 with Retry-After (0 = unlimited)", 0,
      G_MAXUINT, 0, rw_playing);
  props[PROP_VIEWER_COUNT] = g_param_spec_uint(
      "viewer-count", "Viewer count", "Viewers currently attached (negotiating or playing)", 0,
      G_MAXUINT, 0, GParamFlags(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  props[PROP_LATENCY] = g_param_spec_uint(
      "latency", "Latency",
      "Receive jitterbuffer of each viewer's webrtcbin in ms (viewers send only RTCP here)", 0,
      10000, kDefaultLatency, rw_playing);
  props[PROP_VIEWER_TIMEOUT] = g_param_spec_uint(
      "viewer-timeout", "Viewer timeout",
      "Seconds without RTCP from a connected viewer before it is considered gone and removed "
      "(0 = never; ICE/DTLS failure removes a viewer regardless)",
      0, 3600, kDefaultViewerTimeout, rw_playing);
  props[PROP_FANOUT_THREADS] = g_param_spec_uint(
      "fanout-threads", "Fan-out threads",
      "Sender threads that encrypt and send each input's packets to its viewers, viewers spread "
      "evenly over them (0 = one per processor; 1 = none: the input's streaming thread sends "
      "inline). Applies to input pads requested afterwards",
      0, 64, 0, GParamFlags(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  props[PROP_DIRECT_SEND] = g_param_spec_boolean(
      "direct-send", "Direct send",
      "Send each viewer's media from the fan-out straight to its ICE socket with the SRTP keys "
      "its webrtcbin negotiated (webrtcbin keeps ICE, DTLS and RTCP; NACKs are answered from a "
      "shared history). FALSE = every packet through the viewer's webrtcbin. Applies to viewers "
      "joining afterwards",
      TRUE, rw_playing);
  props[PROP_ICE_SESSIONS_PER_AGENT] = g_param_spec_uint(
      "ice-sessions-per-agent", "ICE sessions per agent",
      "Viewers that share one libnice agent and its thread (same ICE settings; each keeps its "
      "own ICE stream, credentials, candidates and sockets). 0 = each viewer's webrtcbin makes "
      "its own agent. Applies to viewers joining afterwards",
      0, 1024, kDefaultIceSessionsPerAgent, rw_playing);
  props[PROP_RELEASE_WEBRTCBIN] = g_param_spec_boolean(
      "release-webrtcbin", "Release webrtcbin",
      "Once a viewer on the direct path with a shared ICE agent has sent its first SRTCP (its "
      "DTLS handshake is over), stop and release its webrtcbin: its RTCP (SRs, receiver "
      "reports, PLI/FIR, NACK) is then handled on the shared agent's thread, with no thread "
      "and no element per viewer. FALSE = keep each viewer's webrtcbin for the whole session. "
      "Applies to viewers joining afterwards",
      TRUE, rw_playing);
  g_object_class_install_properties(oclass, N_PROPS, props);

  // void viewer-added (GstElement*, const gchar *session)
  signals[SIGNAL_VIEWER_ADDED] =
      g_signal_new("viewer-added", G_TYPE_FROM_CLASS(klass), G_SIGNAL_RUN_LAST, 0, nullptr,
                   nullptr, nullptr, G_TYPE_NONE, 1, G_TYPE_STRING);
  // void viewer-removed (GstElement*, const gchar *session)
  signals[SIGNAL_VIEWER_REMOVED] =
      g_signal_new("viewer-removed", G_TYPE_FROM_CLASS(klass), G_SIGNAL_RUN_LAST, 0, nullptr,
                   nullptr, nullptr, G_TYPE_NONE, 1, G_TYPE_STRING);
  // void handle-request (GstElement*, GstStructure *request, GstPromise *promise)
  signals[SIGNAL_HANDLE_REQUEST] = g_signal_new_class_handler(
      "handle-request", G_TYPE_FROM_CLASS(klass), GSignalFlags(G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION),
      G_CALLBACK(handle_request_cb), nullptr, nullptr, nullptr, G_TYPE_NONE, 2,
      GST_TYPE_STRUCTURE | G_SIGNAL_TYPE_STATIC_SCOPE, GST_TYPE_PROMISE);
  // GstStructure *get-viewer-stats (GstElement*, const gchar *session): transfer full, NULL if unknown
  signals[SIGNAL_GET_VIEWER_STATS] = g_signal_new_class_handler(
      "get-viewer-stats", G_TYPE_FROM_CLASS(klass), GSignalFlags(G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION),
      G_CALLBACK(get_viewer_stats_cb), nullptr, nullptr, nullptr, GST_TYPE_STRUCTURE, 1,
      G_TYPE_STRING);

  gst_element_class_add_static_pad_template(eclass, &video_template);
  gst_element_class_add_static_pad_template(eclass, &audio_template);
  gst_element_class_set_static_metadata(
      eclass, "WHEP server sink", "Sink/Network/WebRTC",
      "Serves encoded audio/video to many WHEP viewers: payloaded once, fanned out to one sendonly "
      "webrtcbin per viewer with per-viewer payload types, NACK/RTX and coalesced keyframe requests",
      "whipwhep");
}
