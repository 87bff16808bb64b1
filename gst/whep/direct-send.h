// The direct send path of one WHEP viewer: fanned-out RTP goes from the
// fan-out's sender thread straight to the viewer's ICE socket, SRTP-protected
// with the keys its webrtcbin negotiated, one sendmmsg() per batch.
//
// Why: with one webrtcbin per viewer, each packet for each viewer crossed
// rtpbin, rtpsession, rtprtxsend, srtpenc (libsrtp2 on NSS), a funnel and
// nicesink, one GStreamer push and one sendmsg each: ~31 us per packet and
// viewer in the fan-out profile. webrtcbin still does what is per viewer
// protocol work: ICE, DTLS, RTCP (receiver reports, PLI, NACK, SR). Only the
// media bytes skip it.
//
// What keeps webrtcbin's RTCP right: rtpsession answers PLI and sends SRs
// only for sources it has seen sending, so one packet per leg every
// kKeepaliveUs still goes through webrtcbin (keepalive()); a pad probe drops
// it at srtpenc, so it is never sent twice. rtpsession's own RTCP (SRs) is
// SRTCP-protected and sent on this path too (send_rtcp), at srtpenc's door. NACKs, which webrtcbin's
// rtprtxsend can no longer answer (its history only has those keepalives),
// are answered by the viewer session from the fan-out's shared history
// (Fanout::recent) through resend().
//
// Sending: plain UDP pairs get sendmmsg on the pair's own socket (UDP GSO,
// one train per frame); relayed (TURN) and ICE-TCP pairs go through libnice,
// which frames them. Not activated (webrtcbin's own path is used) when the
// SRTP profile is not AES-CM-128 with HMAC-SHA1 or the keys cannot be read.
#pragma once

#include <gst/gst.h>
#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gobj.h"
#include "srtp-protect.h"

typedef struct _NiceAgent NiceAgent;
typedef struct _NiceCandidate NiceCandidate;

namespace whipwhep {

class SendBatch;

class DirectSender : public std::enable_shared_from_this<DirectSender> {
 public:
  // rtpsession keeps a source a sender for two RTCP intervals (>= 5 s)
  // after its last packet, and an SR only needs one real packet to map RTP
  // time to NTP time. Each keepalive crosses the viewer's webrtcbin; 1 s
  // instead of 200 ms saved ~3 % of the relay's CPU per viewer in an
  // interleaved A/B (3 of 3 pairs lower; bench/RESULTS.md).
  static constexpr gint64 kKeepaliveUs = 1000 * 1000, kKeepaliveMaxUs = 2000 * 1000;

  // Switches the viewer's media onto the direct path if its webrtcbin (DTLS
  // connected) allows it; nullptr and a reason otherwise.
  static std::shared_ptr<DirectSender> activate(GstElement *webrtcbin, std::string *why);
  ~DirectSender();
  DirectSender(const DirectSender &) = delete;
  DirectSender &operator=(const DirectSender &) = delete;

  bool active() const { return !closed_.load(std::memory_order_acquire); }
  // A batch of RTP packets as plain bytes, read out of their GstBuffers
  // once for all the viewers one sender thread serves (not once a viewer).
  struct Plain {
    std::vector<guint8> bytes;
    std::vector<std::pair<size_t, size_t>> packets;  // offset, length
    void assign(GstBufferList *list);
  };
  // SRTP-protects the batch (payload type rewritten to `pt` unless pt < 0)
  // and sends it in one sendmmsg, or queues it in `queue` (the calling
  // sender thread's io_uring batch, send-batch.h; may be null), which sends
  // it at its flush(). A full socket buffer drops and counts. Returns the
  // number of packets sent or queued; a queued packet that fails later is
  // counted as dropped and taken off `sent` (may be null).
  guint send(const Plain &batch, int pt, SendBatch *queue = nullptr,
             std::atomic<guint64> *sent = nullptr);
  guint resend(GstBuffer *packet, int pt);
  // The packet of this batch of leg `leg` (index 0..3) that should also go
  // through webrtcbin now, for its RTCP bookkeeping, or null: every
  // kKeepaliveUs the last packet that ends a frame (marker bit), so that
  // what webrtcbin sees is timed like a whole frame sent (the relay-latency
  // bench measures there), or any packet after kKeepaliveMaxUs.
  GstBuffer *keepalive(guint leg, GstBufferList *list, gint64 now_us);
  // No more sends; the socket is released. Call before stopping webrtcbin,
  // never from a fan-out sender thread: it waits for the packets a sender
  // thread's batch still holds for this viewer (microseconds).
  void close();

  // One compound RTCP packet of webrtcbin's (rtpsession's SRs) protected
  // and sent on this path; false: leave it to srtpenc.
  bool send_rtcp(GstBuffer *rtcp);
  // A plain compound RTCP packet (an SR built by direct-rtcp.h) protected
  // and sent; 0 if it could not be (closed, not RTCP, too long).
  int send_rtcp(const guint8 *plain, gsize size);
  // The viewer's webrtcbin is being released: no more keepalives through
  // it, and what its RTCP path still emits is dropped, not sent.
  void mute_webrtcbin();
  NiceAgent *agent() const { return reinterpret_cast<NiceAgent *>(agent_.get()); }
  guint stream_id() const { return stream_id_; }

  guint64 dropped() const { return dropped_.load(); }
  guint64 rtcp_sent() const { return rtcp_sent_.load(); }
  guint64 resent() const { return resent_.load(); }
  // Whether sends still use UDP GSO: false once the kernel refused it for
  // this viewer's socket (e.g. an IPsec policy on the route: EIO).
  bool udp_gso() const { return gso_.load(std::memory_order_relaxed); }

 private:
  friend class SendBatch;
  DirectSender() = default;
  void set_path(NiceCandidate *local, NiceCandidate *remote);
  guint send_locked(const Plain &batch, int pt);
  // SRTP-protects each packet of `batch` (payload type `pt`) into space()
  // (room for kQueuedPacketSpace bytes), then keep(len) for each it kept.
  template <class Space, class Keep>
  void protect_each(const Plain &batch, int pt, Space space, Keep keep);
  guint queue_locked(const Plain &batch, int pt, SendBatch *queue, std::atomic<guint64> *sent);
  // A message of this viewer's that a SendBatch sent: `res` is sendmsg's
  // result or -errno.
  void batch_done(const msghdr &msg, guint packets, int res, std::atomic<guint64> *sent);
  void inflight_done();
  // The message header for `run` packets from `iov` to `name` (the peer),
  // with a UDP_SEGMENT control message in `control` when run > 1.
  void fill_message(msghdr &mh, sockaddr_storage *name, iovec *iov, guint run, char *control,
                    size_t control_len) const;
  // How many packets from iovs[i] go in one message (UDP GSO: same-sized
  // packets and one shorter last one).
  guint train_length(const iovec *iovs, guint i, guint m) const;
  // Sends the scratch's iovs[0..m): sendmmsg on the pair's socket, or
  // through libnice (relayed and TCP pairs). Returns how many went out.
  guint send_prepared(guint m);
  guint send_socket(guint first, guint m);
  static void on_selected_pair(NiceAgent *agent, guint stream, guint component,
                               NiceCandidate *local, NiceCandidate *remote, gpointer data);

  std::mutex lock_;  // the SRTP context and the socket
  SrtpProtector srtp_;
  gobj::Ref<GObject> socket_;  // the selected pair's GSocket (the agent's)
  int fd_ = -1;
  sockaddr_storage peer_{};
  socklen_t peer_len_ = 0;
  // The largest RTP or RTCP packet this path sends.
  static constexpr gsize kMaxPacket = 1500;

 public:
  // Room to ask of a SendBatch (reserve) before send() queues `packets`.
  static constexpr gsize kQueuedPacketSpace = kMaxPacket + SrtpProtector::kMaxTrailer;

 private:
  // Working space for one batch, per sending thread (a fan-out shard's
  // thread, or a viewer's RTCP thread for a retransmission): shared by all
  // the viewers a thread serves instead of held by each.
  struct Control {
    alignas(cmsghdr) char bytes[CMSG_SPACE(sizeof(guint16))];
  };
  struct Scratch {
    std::vector<guint8> bytes;
    std::vector<mmsghdr> msgs;
    std::vector<iovec> iovs;
    std::vector<Control> controls;
    std::vector<guint> runs;  // packets per message
  };
  static Scratch &scratch();
  std::atomic<bool> gso_{true};  // UDP GSO until the kernel refuses it (written under lock_)

  gobj::Ref<GObject> agent_;
  gulong pair_handler_ = 0;
  guint stream_id_ = 0;
  std::vector<std::pair<gobj::Ref<GstPad>, gulong>> probes_;  // on srtpenc's sink pads
  std::atomic<bool> closed_{false};
  // Messages queued in a SendBatch and not yet completed; close() waits
  // for none.
  std::atomic<int> inflight_{0};
  std::mutex flight_lock_;
  std::condition_variable flight_cv_;
  std::atomic<bool> webrtcbin_muted_{false};
  std::atomic<gint64> last_keepalive_us_[4] = {};
  std::atomic<guint64> dropped_{0}, resent_{0}, rtcp_sent_{0};
};

}  // namespace whipwhep
