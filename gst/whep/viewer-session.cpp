#include "viewer-session.h"

#include <agent.h>

#include "shared-ice.h"
#include "webrtc-negotiation.h"

#include <atomic>

#include <gst/rtp/rtp.h>
#include <gst/webrtc/webrtc.h>

#include <algorithm>

GST_DEBUG_CATEGORY_EXTERN(whepserversink_debug);
#define GST_CAT_DEFAULT whepserversink_debug

namespace whipwhep {

namespace {
constexpr gint64 kConnectTimeoutUs = 20 * G_USEC_PER_SEC;
constexpr gint64 kDisconnectedTimeoutUs = 10 * G_USEC_PER_SEC;
}  // namespace

std::shared_ptr<ViewerSession> ViewerSession::create(const std::string &id, guint latency_ms,
                                                     const IceSettings &ice,
                                                     guint ice_sessions_per_agent,
                                                     bool direct_send, bool release_webrtcbin,
                                                     Hooks hooks) {
  std::shared_ptr<ViewerSession> v(new ViewerSession(id, std::move(hooks)));
  v->direct_wanted_ = direct_send;
  // Without a shared agent the ICE agent is webrtcbin's own and goes with it.
  v->release_wanted_ = release_webrtcbin && direct_send && ice_sessions_per_agent > 0;
  // Named by a counter, not the session id: element names appear in every
  // log line, and the session id is the credential that lets its holder
  // DELETE or PATCH the session. The id is attached as object data instead.
  static std::atomic<guint64> counter{0};
  const std::string name = "viewer-" + std::to_string(counter.fetch_add(1));
  gobj::Ref<GstElementFactory> factory = gobj::adopt(gst_element_factory_find("webrtcbin"));
  if (!factory) return nullptr;
  if (ice_sessions_per_agent) {
    // "ice-agent" is construct-only: the element is made by type.
    gobj::Ref<GstPluginFeature> loaded =
        gobj::adopt(gst_plugin_feature_load(GST_PLUGIN_FEATURE(factory.get())));
    if (!loaded) return nullptr;
    GType type = gst_element_factory_get_element_type(GST_ELEMENT_FACTORY(loaded.get()));
    gobj::Ref<GstWebRTCICE> agent =
        shared_ice_new(ice, ice_sessions_per_agent, (name + ":ice").c_str());
    v->webrtcbin_ = gobj::sink(GST_ELEMENT(
        g_object_new(type, "name", name.c_str(), "ice-agent", agent.get(), nullptr)));
    // webrtcbin (1.22) stores the object without taking a reference and
    // unrefs it when finalized: ours is its.
    if (v->webrtcbin_) agent.release();
  } else {
    v->webrtcbin_ = gobj::sink(gst_element_factory_create(factory.get(), name.c_str()));
  }
  if (!v->webrtcbin_) return nullptr;
  g_object_set_data_full(G_OBJECT(v->webrtcbin_.get()), "whipwhep-viewer-session",
                         g_strdup(id.c_str()), g_free);
  g_object_set(v->webrtcbin_.get(), "bundle-policy", GST_WEBRTC_BUNDLE_POLICY_MAX_BUNDLE, "latency",
               latency_ms, nullptr);
  configure_ice(v->webrtcbin_.get(), ice);
  // webrtcbin (1.20+) puts a clocksync with sync=TRUE in front of each
  // sink pad, so a push into it waits for the buffer's running time plus
  // the pipeline latency. Our fan-out pushes into every viewer's webrtcbin
  // from sender threads that serve many viewers (media on the webrtcbin
  // path, keepalives on the direct path): one such wait, measured at
  // 30-200 ms under load, stalled all the others on that thread. The
  // relay forwards live media as it arrives; pacing is upstream's job.
  v->connect(v->webrtcbin_.get(), "element-added",
             G_CALLBACK(+[](GstBin *, GstElement *element, gpointer) {
               GstElementFactory *f = gst_element_get_factory(element);
               if (f && g_str_equal(GST_OBJECT_NAME(f), "clocksync"))
                 g_object_set(element, "sync", FALSE, nullptr);
             }));
  v->connect(v->webrtcbin_.get(), "notify::ice-connection-state",
             G_CALLBACK(+[](GstElement *, GParamSpec *, gpointer data) {
               static_cast<ViewerSession *>(data)->on_ice_state();
             }));
  return v;
}

ViewerSession::~ViewerSession() { disconnect_all(); }

void ViewerSession::forget_webrtcbin_parts() {
  std::lock_guard<std::mutex> g(handlers_lock_);
  rtp_session_.reset();
  dtls_send_pad_.reset();
}

void ViewerSession::connect(gpointer instance, const char *signal, GCallback cb) {
  std::lock_guard<std::mutex> g(handlers_lock_);
  gulong handler = g_signal_connect(instance, signal, cb, this);
  handlers_.emplace_back(gobj::ref(G_OBJECT(instance)), handler);
}

void ViewerSession::disconnect_all() {
  std::lock_guard<std::mutex> g(handlers_lock_);
  for (auto &h : handlers_)
    if (g_signal_handler_is_connected(h.first.get(), h.second))
      g_signal_handler_disconnect(h.first.get(), h.second);
  handlers_.clear();
}

void ViewerSession::on_ice_state() {
  GstWebRTCICEConnectionState st;
  g_object_get(webrtcbin_.get(), "ice-connection-state", &st, nullptr);
  if (st == GST_WEBRTC_ICE_CONNECTION_STATE_FAILED) {
    failed_ = true;
    hooks_.schedule_remove(id_, "ICE failed");
  } else if (st == GST_WEBRTC_ICE_CONNECTION_STATE_DISCONNECTED) {
    gint64 zero = 0;
    disconnected_since_us_.compare_exchange_strong(zero, g_get_monotonic_time());
  } else if (st != GST_WEBRTC_ICE_CONNECTION_STATE_CLOSED) {
    disconnected_since_us_ = 0;
  }
}

std::string ViewerSession::prepare_answer(const ViewerPlan &plan,
                                          const std::vector<std::shared_ptr<Input>> &inputs) {
  GstElement *bin = webrtcbin_.get();
  // webrtcbin 1.22 creates no transceivers from a remote offer: each
  // requested sink pad brings one, matched to the offer's m-line by its
  // codec preferences when the answer is created.
  std::vector<Leg> legs;
  for (const auto &l : plan.legs) {
    std::string pad_name = "sink_" + std::to_string(l.mline);
    gobj::Ref<GstPad> pad = gobj::adopt(gst_element_request_pad_simple(bin, pad_name.c_str()));
    if (!pad) return "webrtcbin refused a sink pad for m-line " + std::to_string(l.mline);
    gobj::Ref<GstWebRTCRTPTransceiver> trans;
    g_object_get(pad.get(), "transceiver", trans.out(), nullptr);
    if (!trans) return "webrtcbin gave no transceiver for m-line " + std::to_string(l.mline);
    // Facts #2: without preferences and a direction the answer is inactive.
    g_object_set(trans.get(), "direction", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDONLY,
                 "codec-preferences", l.codec_preferences.get(), "do-nack",
                 inputs[l.stream]->kind == MediaKind::Video, nullptr);
    Leg leg;
    leg.input = inputs[l.stream];
    leg.sinkpad = pad;
    leg.branch = leg.input->fanout->add_branch(pad.get(), l.pt);
    legs.push_back(std::move(leg));
  }
  std::lock_guard<std::mutex> g(legs_lock_);
  legs_ = std::move(legs);
  if (stopped_)  // removed meanwhile: undo at once
    for (auto &leg : legs_) leg.input->fanout->remove_branch(leg.branch);
  return {};
}

void ViewerSession::watch_transport() {
  // Media flows to a viewer once its DTLS transport is up (see fanout.h).
  gobj::Ref<GstWebRTCDTLSTransport> transport;
  {
    std::lock_guard<std::mutex> g(legs_lock_);
    for (auto &leg : legs_) {
      gobj::Ref<GstWebRTCRTPTransceiver> trans;
      g_object_get(leg.sinkpad.get(), "transceiver", trans.out(), nullptr);
      if (!trans) continue;
      gobj::Ref<GstWebRTCRTPSender> sender;
      g_object_get(trans.get(), "sender", sender.out(), nullptr);
      if (sender) g_object_get(sender.get(), "transport", transport.out(), nullptr);
      if (transport) break;
    }
  }
  if (!transport) return;
  connect(transport.get(), "notify::state",
          G_CALLBACK(+[](GstWebRTCDTLSTransport *t, GParamSpec *, gpointer data) {
            auto *v = static_cast<ViewerSession *>(data);
            GstWebRTCDTLSTransportState st;
            g_object_get(t, "state", &st, nullptr);
            if (st == GST_WEBRTC_DTLS_TRANSPORT_STATE_CONNECTED) {
              v->on_connected();
            } else if (st == GST_WEBRTC_DTLS_TRANSPORT_STATE_FAILED) {
              v->failed_ = true;
              v->hooks_.schedule_remove(v->id_, "DTLS failed");
            }
          }));
  GstWebRTCDTLSTransportState st;
  g_object_get(transport.get(), "state", &st, nullptr);
  if (st == GST_WEBRTC_DTLS_TRANSPORT_STATE_CONNECTED) on_connected();
}

void ViewerSession::park_handshake_sender_if_running() {
  // SRTCP from the viewer means its DTLS handshake is complete too (it has
  // the keys), so it will not ask for a retransmitted flight: dtlsenc's
  // send task has nothing left to do. Its thread goes back to the pool
  // (one thread fewer per viewer); SRTP and SRTCP never pass through it.
  // Checked on every RTCP packet, not once: a park that did not take (the
  // pad busy, or activated again) is retried on the next one.
  gobj::Ref<GstPad> pad;
  {
    std::lock_guard<std::mutex> g(handlers_lock_);
    pad = dtls_send_pad_;
  }
  if (!pad || !gst_pad_is_active(pad.get()) || park_in_flight_->exchange(true)) return;
  struct Job {
    gobj::Ref<GstPad> pad;
    std::shared_ptr<std::atomic<bool>> in_flight;
  };
  // Off this streaming thread: stopping the task joins it.
  gst_element_call_async(
      webrtcbin_.get(),
      [](GstElement *webrtcbin, gpointer data) {
        auto *job = static_cast<Job *>(data);
        if (gst_pad_set_active(job->pad.get(), FALSE))
          GST_DEBUG_OBJECT(webrtcbin, "DTLS send task stopped");
        else
          GST_INFO_OBJECT(webrtcbin, "DTLS send task not stopped; retried on the next RTCP");
        job->in_flight->store(false);
      },
      new Job{std::move(pad), park_in_flight_}, [](gpointer data) { delete static_cast<Job *>(data); });
}

void ViewerSession::on_connected() {
  if (connected_.exchange(true)) return;
  last_rtcp_us_ = g_get_monotonic_time();
  GST_INFO_OBJECT(webrtcbin_.get(), "viewer %s connected", id_.c_str());
  // RTCP from the viewer proves it is alive (vanished viewers are found by
  // its silence) and carries its NACK/PLI counts and RTT for the stats.
  {
    GObject *session = bundled_rtp_session(webrtcbin_.get());
    if (gobj::Ref<GstElement> dtlsenc = find_by_factory(webrtcbin_.get(), "dtlsenc")) {
      std::lock_guard<std::mutex> g(handlers_lock_);
      dtls_send_pad_ = gobj::adopt(gst_element_get_static_pad(dtlsenc.get(), "src"));
    }
    if (session) {
      connect(session, "on-receiving-rtcp",
              G_CALLBACK(+[](GObject *, GstBuffer *, gpointer data) {
                auto *self = static_cast<ViewerSession *>(data);
                self->last_rtcp_us_ = g_get_monotonic_time();
                self->park_handshake_sender_if_running();
                self->maybe_request_release();
              }));
      // PLI/FIR are counted here (rtpsession's own counters miss them);
      // NACKs are answered here on the direct path (on_nack).
      connect(session, "on-feedback-rtcp",
              G_CALLBACK(+[](GObject *, guint type, guint fbtype, guint, guint media_ssrc,
                             GstBuffer *fci, gpointer data) {
                auto *self = static_cast<ViewerSession *>(data);
                if (type == GST_RTCP_TYPE_PSFB &&
                    (fbtype == GST_RTCP_PSFB_TYPE_PLI || fbtype == GST_RTCP_PSFB_TYPE_FIR))
                  self->plis_++;
                else if (type == GST_RTCP_TYPE_RTPFB && fbtype == GST_RTCP_RTPFB_TYPE_NACK && fci) {
                  GstMapInfo map;
                  if (gst_buffer_map(fci, &map, GST_MAP_READ)) {
                    self->on_nack(media_ssrc, map.data, map.size);
                    gst_buffer_unmap(fci, &map);
                  }
                }
              }));
      std::lock_guard<std::mutex> g(handlers_lock_);
      rtp_session_ = gobj::adopt(session);
    }
  }
  std::shared_ptr<DirectSender> direct = direct_wanted_ ? start_direct_send() : nullptr;
  std::lock_guard<std::mutex> g(legs_lock_);
  direct_ = direct;
  if (stopped_) {
    if (direct) direct->close();
    return;
  }
  guint index = 0;
  for (auto &leg : legs_) {
    leg.branch->direct = direct_;
    leg.branch->leg = index++;
    leg.input->fanout->set_ready(leg.branch);
  }
}

std::shared_ptr<DirectSender> ViewerSession::start_direct_send() {
  std::string why;
  std::shared_ptr<DirectSender> direct = DirectSender::activate(webrtcbin_.get(), &why);
  if (!direct) {
    GST_INFO_OBJECT(webrtcbin_.get(), "viewer %s: media through webrtcbin: %s", id_.c_str(),
                    why.c_str());
    return nullptr;
  }
  GST_INFO_OBJECT(webrtcbin_.get(), "viewer %s: direct send", id_.c_str());
  return direct;
}

void ViewerSession::on_nack(guint32 media_ssrc, const guint8 *fci, gsize len) {
  // webrtcbin's rtprtxsend never sees the media on the direct path: NACKs
  // are answered here, from the fan-out's history, as plain retransmissions
  // on the media SSRC. FCI: (PID, BLP) pairs, RFC 4585 6.2.1.
  std::vector<guint16> lost;
  for (gsize i = 0; i + 4 <= len; i += 4) {
    const guint16 pid = guint16((fci[i] << 8) | fci[i + 1]);
    const guint16 blp = guint16((fci[i + 2] << 8) | fci[i + 3]);
    lost.push_back(pid);
    for (int b = 0; b < 16; b++)
      if (blp & (1 << b)) lost.push_back(guint16(pid + b + 1));
  }
  std::lock_guard<std::mutex> g(legs_lock_);
  if (stopped_ || !direct_) return;
  // The round trip is known once the viewer's reports echo our SRs; only
  // the released path (RTCP on the agent's thread) reads it cheaply.
  const double rtt_s = rtcp_ ? rtcp_->rtt() : -1;
  const gint64 rtt_us = rtt_s >= 0 ? gint64(rtt_s * G_USEC_PER_SEC) : -1;
  guint64 sent = 0;
  for (auto &leg : legs_)
    if (leg.branch) sent += leg.branch->packets.load(std::memory_order_relaxed);
  const gint64 now = g_get_monotonic_time();
  for (guint16 seq : lost)
    for (auto &leg : legs_) {
      gint64 handed_us = 0;
      gobj::Ref<GstBuffer> packet = leg.input->fanout->recent(media_ssrc, seq, &handed_us);
      if (!packet) continue;
      if (retransmit_guard_.allow(media_ssrc, seq, handed_us, now, rtt_us, sent)) {
        const int spt = leg.input->fanout->stream_pt();
        direct_->resend(packet.get(), leg.branch->pt >= 0 && leg.branch->pt != spt ? leg.branch->pt : -1);
      }
      break;
    }
}

void ViewerSession::add_remote_candidates(const std::string &sdpfrag) {
  gobj::Ref<GstElement> webrtcbin;
  std::shared_ptr<DirectSender> direct;
  {
    std::lock_guard<std::mutex> g(legs_lock_);
    webrtcbin = webrtcbin_;
    direct = direct_;
  }
  gobj::Unique<gchar *> lines(g_strsplit(sdpfrag.c_str(), "\n", -1));
  for (gchar **l = lines.get(); l && *l; l++) {
    std::string line = g_strstrip(*l);
    if (line.rfind("a=candidate:", 0) != 0) continue;
    if (webrtcbin) {
      g_signal_emit_by_name(webrtcbin.get(), "add-ice-candidate", 0u, line.substr(2).c_str());
    } else if (direct) {
      // Released: straight to the viewer's stream on the shared agent.
      NiceCandidate *c = nice_agent_parse_remote_candidate_sdp(direct->agent(), direct->stream_id(),
                                                               line.substr(2).c_str());
      if (!c) continue;
      GSList one = {c, nullptr};
      nice_agent_set_remote_candidates(direct->agent(), direct->stream_id(), 1, &one);
      nice_candidate_free(c);
    }
  }
}

const char *ViewerSession::gone_reason(gint64 now, gint64 rtcp_timeout) const {
  const gint64 ds = disconnected_since_us_;
  if (failed_) return "ICE or DTLS failed";
  if (!connected_ && now - created_us_ > kConnectTimeoutUs) return "never connected";
  if (ds && now - ds > kDisconnectedTimeoutUs) return "ICE disconnected";
  if (connected_ && rtcp_timeout && now - last_rtcp_us_ > rtcp_timeout)
    return "no RTCP from the viewer";
  return nullptr;
}

void ViewerSession::drop_input(const std::shared_ptr<Input> &in) {
  std::lock_guard<std::mutex> g(legs_lock_);
  for (auto &leg : legs_)
    if (leg.input == in && leg.branch) in->fanout->remove_branch(leg.branch);
}

bool ViewerSession::stop(gobj::Ref<GstElement> *stopped_webrtcbin) {
  std::lock_guard<std::mutex> lifecycle(lifecycle_lock_);
  std::vector<Leg> legs;
  std::shared_ptr<DirectSender> direct;
  std::shared_ptr<DirectRtcp> rtcp;
  gobj::Ref<GstElement> webrtcbin;
  {
    std::lock_guard<std::mutex> g(legs_lock_);
    if (stopped_) return false;
    stopped_ = true;
    legs = legs_;
    direct = direct_;
    rtcp = rtcp_;
    webrtcbin = webrtcbin_;
  }
  // No new packets for this viewer; then stop its webrtcbin, which also
  // unblocks a push in flight (e.g. its sink waiting for preroll while the
  // pipeline pauses); only then wait for that push and unlink.
  for (auto &leg : legs)
    if (leg.branch) leg.input->fanout->detach_branch(leg.branch);
  disconnect_all();
  // Out of the agent's callbacks (released viewers) before what they use goes.
  if (rtcp) rtcp->stop();
  // Before webrtcbin's agent closes the socket the direct path writes to.
  if (direct) direct->close();
  if (webrtcbin) {
    gst_element_set_locked_state(webrtcbin.get(), TRUE);
    gst_element_set_state(webrtcbin.get(), GST_STATE_NULL);
  }
  for (auto &leg : legs)
    if (leg.branch) leg.input->fanout->release_branch(leg.branch);
  for (auto &leg : legs)
    if (webrtcbin && leg.sinkpad) gst_element_release_request_pad(webrtcbin.get(), leg.sinkpad.get());
  forget_webrtcbin_parts();
  if (stopped_webrtcbin) *stopped_webrtcbin = std::move(webrtcbin);
  return true;
}

void ViewerSession::maybe_request_release() {
  if (!release_wanted_ || release_requested_.load(std::memory_order_relaxed)) return;
  {
    std::lock_guard<std::mutex> g(legs_lock_);
    if (!direct_ || stopped_) return;
  }
  // SRTCP from the viewer: its DTLS handshake is over on both sides (it
  // has the keys), so nothing of webrtcbin's DTLS is needed any more.
  if (!release_requested_.exchange(true)) hooks_.schedule_release(id_);
}

void ViewerSession::on_keyframe_request(guint32 media_ssrc) {
  plis_++;
  std::lock_guard<std::mutex> g(legs_lock_);
  if (stopped_) return;
  for (auto &leg : legs_)
    if (leg.branch && leg.branch->last_ssrc.load(std::memory_order_relaxed) == media_ssrc) {
      leg.branch->keyframe_requests++;
      leg.input->fanout->request_keyframe();
      return;
    }
}

DirectRtcp::Hooks ViewerSession::direct_rtcp_hooks() {
  // On the agent's thread; the session may be going away meanwhile.
  std::weak_ptr<ViewerSession> weak = shared_from_this();
  DirectRtcp::Hooks h;
  h.on_report = [weak] {
    if (auto v = weak.lock()) v->last_rtcp_us_ = g_get_monotonic_time();
  };
  h.on_keyframe_request = [weak](guint32 ssrc) {
    if (auto v = weak.lock()) v->on_keyframe_request(ssrc);
  };
  h.on_nack = [weak](guint32 ssrc, const guint8 *fci, gsize len) {
    if (auto v = weak.lock()) v->on_nack(ssrc, fci, len);
  };
  h.on_bye = [weak] {
    if (auto v = weak.lock()) v->hooks_.schedule_remove(v->id_, "the viewer sent an RTCP BYE");
  };
  return h;
}

gobj::Ref<GstElement> ViewerSession::release_webrtcbin() {
  std::lock_guard<std::mutex> lifecycle(lifecycle_lock_);
  std::vector<Leg> legs;
  std::shared_ptr<DirectSender> direct;
  gobj::Ref<GstElement> webrtcbin;
  {
    std::lock_guard<std::mutex> g(legs_lock_);
    if (stopped_ || !webrtcbin_ || !direct_ || !direct_->active()) return {};
    legs = legs_;
    direct = direct_;
    webrtcbin = webrtcbin_;
  }
  for (auto &leg : legs)
    if (!leg.branch || leg.branch->direct != direct) return {};

  // What the RTCP handler needs, read from webrtcbin while it runs: its ICE
  // object (which keeps the viewer's stream on the shared agent), the
  // viewer's SRTP key (dtlsdec's decoder key) and rtpsession's CNAME.
  DirectRtcp::Setup setup;
  setup.sender = direct;
  g_object_get(webrtcbin.get(), "ice-agent", setup.ice.out(), nullptr);
  gobj::Ref<GstElement> dtlsdec = find_by_factory(webrtcbin.get(), "dtlsdec");
  gobj::Ref<GstBuffer> key;
  gint auth = 0;
  if (dtlsdec) g_object_get(dtlsdec.get(), "decoder-key", key.out(), "srtp-auth", &auth, nullptr);
  if (!setup.ice || !key) {
    GST_INFO_OBJECT(webrtcbin.get(), "viewer %s keeps its webrtcbin: %s", id_.c_str(),
                    setup.ice ? "no viewer key" : "no ICE object");
    return {};
  }
  setup.viewer_key.resize(gst_buffer_get_size(key.get()));
  gst_buffer_extract(key.get(), 0, setup.viewer_key.data(), setup.viewer_key.size());
  setup.rtcp_tag_len = auth == 1 ? 4 : 10;  // GstDtlsSrtpAuth: 1 HMAC-SHA1-32, 2 -80
  {
    std::lock_guard<std::mutex> g(handlers_lock_);
    if (rtp_session_) {
      gobj::Unique<GstStructure> sdes;
      g_object_get(rtp_session_.get(), "sdes", static_cast<GstStructure **>(gobj::out(sdes)), nullptr);
      if (const gchar *cname = sdes ? gst_structure_get_string(sdes.get(), "cname") : nullptr)
        setup.cname = cname;
    }
  }
  if (setup.cname.empty()) setup.cname = "whepserversink-" + id_.substr(0, 8);
  for (auto &leg : legs) {
    DirectRtcp::Leg l;
    l.branch = leg.branch;
    l.clock_element = leg.input->payloader;
    gint rate = 0;
    gobj::Ref<GstCaps> caps = leg.input->fanout->caps();
    if (caps && gst_caps_get_size(caps.get()) > 0 &&
        gst_structure_get_int(gst_caps_get_structure(caps.get(), 0), "clock-rate", &rate) && rate > 0)
      l.clock_rate = guint(rate);
    setup.legs.push_back(l);
  }

  // From here webrtcbin must say nothing more to the viewer: its BYE or a
  // DTLS alert on the way down would end the viewer's session.
  direct->mute_webrtcbin();
  for_each_by_factory(webrtcbin.get(), "nicesink", [](GstElement *nicesink) {
    gobj::Ref<GstPad> pad = gobj::adopt(gst_element_get_static_pad(nicesink, "sink"));
    if (pad)
      gst_pad_add_probe(pad.get(), GstPadProbeType(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST),
                        +[](GstPad *, GstPadProbeInfo *, gpointer) { return GST_PAD_PROBE_DROP; },
                        nullptr, nullptr);
    return true;
  });
  disconnect_all();
  for (auto &leg : legs) leg.input->fanout->unlink_branch(leg.branch);
  gst_element_set_locked_state(webrtcbin.get(), TRUE);
  gst_element_set_state(webrtcbin.get(), GST_STATE_NULL);
  for (auto &leg : legs)
    if (leg.sinkpad) gst_element_release_request_pad(webrtcbin.get(), leg.sinkpad.get());
  // The ICE object outlives webrtcbin now: its candidate callback points
  // into webrtcbin.
  gst_webrtc_ice_set_on_ice_candidate(GST_WEBRTC_ICE(setup.ice.get()), nullptr, nullptr, nullptr);
  forget_webrtcbin_parts();
  // Its receive source detached from the component when it stopped.
  std::string why;
  std::shared_ptr<DirectRtcp> rtcp = DirectRtcp::start(std::move(setup), direct_rtcp_hooks(), &why);
  {
    std::lock_guard<std::mutex> g(legs_lock_);
    webrtcbin_.reset();
    for (auto &leg : legs_) leg.sinkpad.reset();
    rtcp_ = rtcp;
  }
  if (rtcp) {
    released_ = true;
    last_rtcp_us_ = g_get_monotonic_time();
    GST_INFO_OBJECT(webrtcbin.get(), "viewer %s: webrtcbin released, RTCP on the agent's thread",
                    id_.c_str());
  } else {
    GST_WARNING_OBJECT(webrtcbin.get(), "viewer %s: RTCP could not move off webrtcbin: %s",
                       id_.c_str(), why.c_str());
    failed_ = true;
    hooks_.schedule_remove(id_, "RTCP could not move off webrtcbin");
  }
  return webrtcbin;
}

GstStructure *ViewerSession::stats() {
  guint64 bytes = 0, packets = 0, keyframe_requests = 0, refused = 0;
  std::shared_ptr<DirectSender> direct;
  std::shared_ptr<DirectRtcp> rtcp;
  {
    std::lock_guard<std::mutex> g(legs_lock_);
    direct = direct_;
    rtcp = rtcp_;
    refused = retransmit_guard_.refused();
    for (auto &leg : legs_) {
      bytes += leg.branch->bytes;
      packets += leg.branch->packets;
      keyframe_requests += leg.branch->keyframe_requests;
    }
  }
  guint nacks = 0, plis = plis_.load();
  double rtt = -1;
  gobj::Ref<GObject> session;
  {
    std::lock_guard<std::mutex> g(handlers_lock_);
    session = rtp_session_;
  }
  if (session) {
    // RTPSession builds this under its own lock: safe from any thread.
    gobj::Unique<GstStructure> st;
    g_object_get(session.get(), "stats", static_cast<GstStructure **>(gobj::out(st)), nullptr);
    GST_LOG("viewer %s session stats %" GST_PTR_FORMAT, id_.c_str(), st.get());
    const GValue *arr = st ? gst_structure_get_value(st.get(), "source-stats") : nullptr;
    G_GNUC_BEGIN_IGNORE_DEPRECATIONS
    GValueArray *sources = arr ? static_cast<GValueArray *>(g_value_get_boxed(arr)) : nullptr;
    for (guint i = 0; sources && i < sources->n_values; i++) {
      const GstStructure *src = gst_value_get_structure(g_value_array_get_nth(sources, i));
      gboolean internal = FALSE;
      gst_structure_get_boolean(src, "internal", &internal);
      guint n = 0;
      if (internal && gst_structure_get_uint(src, "recv-nack-count", &n)) nacks += n;
      // The viewer's source carries its receiver report about our stream;
      // rb-round-trip is in 1/65536 s and 0 until an RR echoes our SR.
      if (!internal && gst_structure_get_uint(src, "rb-round-trip", &n) && n > 0)
        rtt = std::max(rtt, n / 65536.0);
    }
    G_GNUC_END_IGNORE_DEPRECATIONS
  }
  if (rtcp) {  // released: the RTCP handler's own counts
    nacks = rtcp->nacks();
    rtt = rtcp->rtt();
  }
  return gst_structure_new("whep-viewer-stats", "session", G_TYPE_STRING, id_.c_str(), "connected",
                           G_TYPE_BOOLEAN, gboolean(connected_.load()), "bytes-sent", G_TYPE_UINT64,
                           bytes, "packets-sent", G_TYPE_UINT64, packets, "nacks-received", G_TYPE_UINT,
                           nacks, "plis-received", G_TYPE_UINT, plis, "keyframe-requests",
                           G_TYPE_UINT64, keyframe_requests, "rtt", G_TYPE_DOUBLE, rtt,
                           "direct-send", G_TYPE_BOOLEAN, gboolean(direct != nullptr),
                           "packets-resent", G_TYPE_UINT64, direct ? direct->resent() : 0,
                           "retransmissions-refused", G_TYPE_UINT64, refused,
                           "packets-dropped", G_TYPE_UINT64, direct ? direct->dropped() : 0,
                           "udp-gso", G_TYPE_BOOLEAN, gboolean(direct && direct->udp_gso()),
                           "rtcp-sent", G_TYPE_UINT64, direct ? direct->rtcp_sent() : 0,
                           "webrtcbin-released", G_TYPE_BOOLEAN, gboolean(rtcp != nullptr),
                           "rtcp-received", G_TYPE_UINT64, rtcp ? rtcp->reports() : 0,
                           "rtcp-rejected", G_TYPE_UINT64, rtcp ? rtcp->rejected() : 0, nullptr);
}

}  // namespace whipwhep
