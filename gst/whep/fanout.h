// One payloaded RTP stream fanned out to many viewers' webrtcbins without a
// tee, a queue or a thread per viewer.
//
// The payloader's src pad links to sink_pad(). Every packet is handed, on the
// publisher's streaming thread, to each *ready* branch: the same buffer (a
// reference, no copy) when the viewer uses the stream's payload type, or a
// buffer whose 12+ byte RTP header is a private copy with the viewer's payload
// type while the payload memory stays shared. A branch is ready only once its
// viewer's DTLS transport is connected: before that webrtcbin blocks its sink
// pads (not yet negotiated) and would stall everyone. Once connected,
// webrtcbin's send path (rtpsession, rtprtxsend, srtpenc, nicesink with
// sync=false) runs inline and never waits, and a full socket buffer drops the
// packet inside libnice: a slow or dead viewer costs a failed send, never a
// stall. That is the leaky behaviour a per-viewer `queue leaky=downstream`
// would give, without the thread per viewer.
//
// Sharding: one thread cannot run SRTP and sendmsg for hundreds of viewers
// (measured: a single streaming thread saturates near 200 viewers at
// 1 Mbit/s), so branches are spread over `threads` shards, each with one
// sender thread fed through a bounded queue of references (never copies).
// The publisher's streaming thread only hands packets over and never waits
// for a viewer, so a busy fan-out cannot back up into the queues upstream
// (measured: with the streaming thread serving a shard itself, a saturated
// relay added p50 ~300 ms there). With threads = 1 there is no sender thread:
// the streaming thread delivers inline. A sender drains everything queued at
// once and hands it to each of its branches as one buffer list, so a busy
// shard batches instead of falling behind; if it still falls behind by more
// than 150 ms (the machine is out of CPU) the oldest packets are dropped and
// counted: the live edge is kept, latency stays bounded, and the publisher is
// never blocked.
//
// Direct send (direct-send.h): a branch whose viewer's media skips its
// webrtcbin gets each list through Branch::direct instead of its pad (the
// payload type is rewritten in the sender's scratch copy, no header copy),
// and only an occasional keepalive packet through the pad. The stream's last
// kHistory packets are kept (references) for retransmission on NACK.
//
// Keyframe requests (upstream GstForceKeyUnit from any viewer, or join) are
// coalesced per stream: at most one per `keyframe_interval` goes upstream; a
// request inside the window is remembered and sent when the window ends.
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gobj.h"

namespace whipwhep {

class DirectSender;

class Fanout {
 public:
  struct Branch {
    gobj::Ref<GstPad> src;     // parentless src pad linked to the viewer's webrtcbin
    int pt = -1;               // viewer's payload type; -1 = keep
    std::atomic<bool> ready{false};
    std::atomic<bool> dead{false};
    std::atomic<guint64> packets{0}, bytes{0}, keyframe_requests{0};
    std::mutex push_lock;      // held while pushing; removal waits on it
    Fanout *owner = nullptr;
    guint shard = 0;
    // Set before set_ready() when the viewer's media skips its webrtcbin
    // (direct-send.h); `leg` numbers this branch among the viewer's.
    std::shared_ptr<DirectSender> direct;
    guint leg = 0;
    // The last packet sent on the direct path: its SSRC, RTP time, its
    // buffer's running time (PTS) and when it was sent (monotonic us). The
    // SRs of a viewer whose webrtcbin was released (direct-rtcp.h) map RTP
    // time to wall-clock time from these, as rtpsession did: through the
    // running time, so that audio and video map alike whatever each waited
    // upstream (send times would skew lip sync by the difference).
    std::atomic<guint32> last_ssrc{0}, last_rtptime{0};
    std::atomic<GstClockTime> last_pts_rt{GST_CLOCK_TIME_NONE};
    std::atomic<gint64> last_sent_us{0};
  };

  // threads = 0: one shard per processor.
  explicit Fanout(const std::string &name, guint threads = 1,
                  GstClockTime keyframe_interval = 300 * GST_MSECOND);
  ~Fanout();
  Fanout(const Fanout &) = delete;
  Fanout &operator=(const Fanout &) = delete;

  GstPad *sink_pad() const { return sink_.get(); }

  // The stream's current RTP caps (null until the payloader negotiated).
  gobj::Ref<GstCaps> caps() const;
  // The stream's payload type from its caps, -1 if unknown.
  int stream_pt() const;

  // A new branch whose src pad is linked to `peer` (a webrtcbin sink pad).
  // It receives nothing until set_ready().
  std::shared_ptr<Branch> add_branch(GstPad *peer, int pt);
  // Start delivering (sticky events first, then packets) and ask for a keyframe.
  void set_ready(const std::shared_ptr<Branch> &b);
  // Stop delivering; returns once no push into the branch is in flight, then
  // unlinks its src pad. Never call from the streaming thread.
  void remove_branch(const std::shared_ptr<Branch> &b) {
    detach_branch(b);
    release_branch(b);
  }
  // The two halves, for a caller that must stop the viewer's webrtcbin in
  // between: a push in flight may be blocked inside it (a sink waiting for
  // preroll in PAUSED) and only returns once that webrtcbin is flushing.
  void detach_branch(const std::shared_ptr<Branch> &b);   // no new pushes; never waits
  void release_branch(const std::shared_ptr<Branch> &b);  // waits for a push in flight, unlinks
  // A direct branch whose viewer's webrtcbin is going away: its src pad is
  // unlinked (nothing more goes through it) while it keeps its packets.
  void unlink_branch(const std::shared_ptr<Branch> &b);

  // Coalesced, rate-limited upstream GstForceKeyUnit.
  void request_keyframe();
  guint64 keyframes_sent() const { return keyframes_sent_.load(); }
  // Shards and packets dropped by senders that fell behind.
  guint shard_count() const { return guint(shard_load_.size()); }
  guint64 dropped_packets() const;
  // Branches per shard, for tests.
  std::vector<guint> shard_loads() const;

  // A packet of this stream sent within about the last second, for
  // retransmission (NACK) on the direct path; null if too old or unknown.
  // One history per stream, shared by every viewer. `handed_us`, if given,
  // gets when the packet reached the fan-out (monotonic us).
  gobj::Ref<GstBuffer> recent(guint32 ssrc, guint16 seq, gint64 *handed_us = nullptr) const;

  // Rewrite the payload type on a copy of the header only; the payload
  // memory is shared. Exposed for tests.
  static GstBuffer *with_payload_type(GstBuffer *buf, guint8 pt);

 private:
  using List = std::vector<std::shared_ptr<Branch>>;
  class Shard;
  // What the streaming thread hands to a shard: media or a sticky event,
  // with the stream's payload type at that moment.
  struct Item {
    gobj::Ref<GstBufferList> list;
    gobj::Ref<GstEvent> event;
    int spt = -1;
    gint64 queued_us = 0;  // monotonic time it was handed to a sender
  };
  static GstFlowReturn chain(GstPad *pad, GstObject *parent, GstBuffer *buf);
  static GstFlowReturn chain_list(GstPad *pad, GstObject *parent, GstBufferList *list);
  static gboolean sink_event(GstPad *pad, GstObject *parent, GstEvent *event);
  static gboolean sink_query(GstPad *pad, GstObject *parent, GstQuery *query);
  static gboolean src_event(GstPad *pad, GstObject *parent, GstEvent *event);
  static gboolean src_query(GstPad *pad, GstObject *parent, GstQuery *query);

  std::shared_ptr<const List> snapshot() const;
  void dispatch(Item item);
  // Deliver to the branches of one shard, on that shard's thread.
  void deliver(guint shard, const Item &item) const;
  void deliver_list(guint shard, GstBufferList *list, int spt) const;
  void store_sticky(Branch &b, GstEvent *event) const;
  void maybe_send_pending_keyframe();
  void send_keyframe_request();

  std::string name_;
  gobj::Ref<GstPad> sink_;
  GstClockTime keyframe_interval_;

  mutable std::mutex lock_;  // guards list_ and the sticky events
  std::shared_ptr<const List> list_;
  gobj::Ref<GstEvent> stream_start_, caps_event_, segment_;
  gobj::Ref<GstCaps> caps_;
  int pt_ = -1;
  std::vector<guint> shard_load_;  // branches per shard
  std::vector<std::unique_ptr<Shard>> shards_;  // one per shard; none when inline (1 shard)

  void remember(GstBufferList *list);
  static constexpr guint kHistory = 512;  // packets: ~1 s of 4 Mbit/s video
  struct Sent {
    guint32 ssrc = 0;
    guint16 seq = 0;
    gint64 handed_us = 0;
    gobj::Ref<GstBuffer> packet;
  };
  mutable std::mutex history_lock_;
  std::vector<Sent> history_ = std::vector<Sent>(kHistory);  // by seq % kHistory

  std::mutex key_lock_;
  gint64 last_keyframe_us_ = 0;  // monotonic time of the last request sent
  bool keyframe_pending_ = false;
  std::atomic<bool> keyframe_pending_hint_{false};
  std::atomic<guint64> keyframes_sent_{0};
  guint key_count_ = 0;
};

}  // namespace whipwhep
