// One WHEP viewer of whepserversink: its sendonly webrtcbin, the fan-out
// branches ("legs") that feed it, the connection watchdog state and its
// stats. The element owns the map of sessions, HTTP routing and the bin;
// a session only asks the element (through ViewerSession::Hooks) to remove
// it, because removal must leave the calling thread (see whepserversink.cpp).
#pragma once

#include <gst/gst.h>
#include <gst/sdp/sdp.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "direct-rtcp.h"
#include "direct-send.h"
#include "fanout.h"
#include "gobj.h"
#include "ice.h"
#include "input-payloader.h"
#include "retransmit-guard.h"
#include "viewer-plan.h"

namespace whipwhep {

class ViewerSession : public std::enable_shared_from_this<ViewerSession> {
 public:
  struct Hooks {
    // Remove this viewer later, off the calling thread (a webrtcbin callback).
    std::function<void(const std::string &id, const char *why)> schedule_remove;
    // Call release_webrtcbin() later, off the calling thread, then take the
    // webrtcbin out of the bin.
    std::function<void(const std::string &id)> schedule_release;
  };
  struct Leg {
    std::shared_ptr<Input> input;
    std::shared_ptr<Fanout::Branch> branch;
    gobj::Ref<GstPad> sinkpad;
  };

  // Creates the viewer's webrtcbin (not yet in a bin); nullptr if webrtcbin
  // is not installed. ice_sessions_per_agent: 0 = webrtcbin's own ICE agent,
  // else a pooled agent shared by that many viewers (shared-ice.h).
  // release_webrtcbin: once connected on the direct path with a shared agent,
  // hand RTCP to a DirectRtcp and let the webrtcbin go (release_webrtcbin()).
  static std::shared_ptr<ViewerSession> create(const std::string &id, guint latency_ms,
                                               const IceSettings &ice,
                                               guint ice_sessions_per_agent, bool direct_send,
                                               bool release_webrtcbin, Hooks hooks);
  ~ViewerSession();
  ViewerSession(const ViewerSession &) = delete;
  ViewerSession &operator=(const ViewerSession &) = delete;

  const std::string &id() const { return id_; }
  // Null once released.
  gobj::Ref<GstElement> webrtcbin() const {
    std::lock_guard<std::mutex> g(legs_lock_);
    return webrtcbin_;
  }
  bool connected() const { return connected_; }
  // The viewer's ICE ufrag from its offer: a PATCH with another one is an
  // ICE restart, with this one (or none) trickle.
  void set_remote_ufrag(std::string ufrag) { remote_ufrag_ = std::move(ufrag); }
  const std::string &remote_ufrag() const { return remote_ufrag_; }

  // On webrtcbin's thread, before create-answer: one sink pad + sendonly
  // transceiver + fan-out branch per planned leg. Returns an error or "".
  std::string prepare_answer(const ViewerPlan &plan,
                             const std::vector<std::shared_ptr<Input>> &inputs);
  // After the answer: media starts once DTLS is connected.
  void watch_transport();
  // PATCH body (trickle-ice-sdpfrag): hands its candidates to webrtcbin.
  void add_remote_candidates(const std::string &sdpfrag);
  // Why the watchdog should remove this viewer now, or nullptr.
  const char *gone_reason(gint64 now_us, gint64 rtcp_timeout_us) const;
  // Legs fed by `in`, which is going away: stop feeding them.
  void drop_input(const std::shared_ptr<Input> &in);
  // Stops feeding and stopping the webrtcbin, releases its pads; the caller
  // then removes the webrtcbin it stopped (*stopped_webrtcbin; null if it
  // was released before) from its bin. Returns false if already stopped.
  bool stop(gobj::Ref<GstElement> *stopped_webrtcbin = nullptr);
  // Off webrtcbin's threads (Hooks::schedule_release): the viewer's RTCP
  // moves to a DirectRtcp on its ICE agent's thread, and its webrtcbin is
  // stopped, its pads released. Returns the stopped webrtcbin for the
  // caller to take out of its bin (the session no longer holds it), or null
  // if nothing was done (stopped meanwhile, or not on the direct path).
  gobj::Ref<GstElement> release_webrtcbin();
  bool released() const { return released_.load(); }
  // "whep-viewer-stats" structure (see whepserversink.cpp), transfer full.
  GstStructure *stats();

 private:
  ViewerSession(const std::string &id, Hooks hooks) : id_(id), hooks_(std::move(hooks)) {}
  void connect(gpointer instance, const char *signal, GCallback cb);
  std::string remote_ufrag_;  // set once, before the session is shared
  void disconnect_all();
  // Drops what this session holds of its webrtcbin's insides (its
  // rtpsession and dtlsenc pad), once that webrtcbin is stopped.
  void forget_webrtcbin_parts();
  void on_ice_state();
  void on_connected();
  void park_handshake_sender_if_running();
  std::shared_ptr<DirectSender> start_direct_send();
  void on_nack(guint32 media_ssrc, const guint8 *fci, gsize len);
  void on_keyframe_request(guint32 media_ssrc);
  void maybe_request_release();
  DirectRtcp::Hooks direct_rtcp_hooks();

  const std::string id_;
  const Hooks hooks_;
  gobj::Ref<GstElement> webrtcbin_;  // under legs_lock_ once shared; null once released
  mutable std::mutex legs_lock_;
  std::mutex lifecycle_lock_;  // stop() and release_webrtcbin(): one at a time
  std::vector<Leg> legs_;   // set on webrtcbin's thread before the answer
  bool stopped_ = false;    // under legs_lock_
  std::mutex handlers_lock_;
  std::vector<std::pair<gobj::Ref<GObject>, gulong>> handlers_;
  gobj::Ref<GObject> rtp_session_;  // webrtcbin's RTPSession (RTCP counters), under handlers_lock_
  gobj::Ref<GstPad> dtls_send_pad_;  // dtlsenc's src pad (its send task), under handlers_lock_
  // A park job is queued or running (park_handshake_sender_if_running).
  std::shared_ptr<std::atomic<bool>> park_in_flight_ = std::make_shared<std::atomic<bool>>(false);
  bool direct_wanted_ = true;
  bool release_wanted_ = false;
  std::atomic<bool> release_requested_{false}, released_{false};
  std::shared_ptr<DirectSender> direct_;  // under legs_lock_; set in on_connected
  std::shared_ptr<DirectRtcp> rtcp_;      // under legs_lock_; set when released
  RetransmitGuard retransmit_guard_;      // under legs_lock_
  std::atomic<bool> connected_{false}, failed_{false};
  std::atomic<guint> plis_{0};  // PLI and FIR received
  const gint64 created_us_ = g_get_monotonic_time();
  std::atomic<gint64> last_rtcp_us_{0}, disconnected_since_us_{0};
};

}  // namespace whipwhep
