// A lean WHEP viewer for the load generators (issue 6): full ICE and DTLS
// per viewer, but no webrtcbin, no rtpbin, no jitterbuffer and no SRTP
// decryption of the media.
//
// One LeanHost per process: one GMainContext thread, one NiceAgent (full
// ICE, controlling, host candidates on 127.0.0.1 only) and one pipeline.
// Per viewer: one nice stream (one component, rtcp-mux, BUNDLE), a bin with
// `dtlssrtpdec` (fed by hand with the DTLS records) and `dtlssrtpenc !
// nicesink` (DTLS handshake out, SRTCP receiver reports out). Packets are
// received by libnice on the host's thread (nice_agent_attach_recv) and
// demultiplexed on their first byte (RFC 7983): DTLS goes to dtlssrtpdec;
// SRTP is counted (packets, bytes with the SRTP auth tag, loss from the
// clear RTP header's sequence numbers) and dropped. The host's first viewer
// is the "sample": it also hands its SRTP/SRTCP to dtlssrtpdec, which
// decrypts and authenticates it; decrypted packets are counted, proving the
// counted packets are valid SRTP.
//
// Every 2 s each connected viewer sends an RTCP RR + SDES (SRTCP through
// dtlssrtpenc): whepserversink drops viewers silent for `viewer-timeout`.
//
// The host thread polls every viewer's socket once per tick rather than
// waking per packet: its cost is per tick, not per packet. The tick is 4 ms
// while any viewer is still setting up (ICE and DTLS pace on it) and 16 ms
// once all carry media.
//
// Connected viewers (all but the sample) are read without libnice: once a
// viewer's first RTP packet arrived, its ICE socket joins the host's epoll
// set, and each tick drains every ready socket with recvmmsg. libnice
// still owns the socket and sends its keepalives, but its reading of it is
// moved to a main context nobody iterates (nice_agent_attach_recv with the
// host's parking context). A datagram then costs a share of one system call
// instead of two (libnice reads one datagram per recvmsg and needs a last
// one that fails with EAGAIN) and of no GSource. On a 2-core host with the
// generators beside the relay, that CPU is what the relay and the measured
// viewer compete for. STUN read this way is dropped: the relay sends only
// keepalive indications, which need no answer.
//
// Threads: the host's one, plus dtlsenc's send task per viewer during the
// handshake only: it is stopped once the first RTP packet shows the relay
// completed DTLS (the RRs do not go through it), so a connected viewer costs
// no thread.
#pragma once

#include <gio/gio.h>
#include <gst/gst.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "gobj.h"
#include "viewer-client.h"

typedef struct _NiceAgent NiceAgent;

namespace bench {

class LeanViewer;

class LeanHost {
 public:
  LeanHost();
  ~LeanHost();  // every LeanViewer must be destroyed first
  LeanHost(const LeanHost &) = delete;
  LeanHost &operator=(const LeanHost &) = delete;

  // Runs fn on the host thread and waits for it (not from the host thread).
  void run_sync(const std::function<void()> &fn);
  // Queues fn on the host thread.
  void run_async(std::function<void()> fn);

  NiceAgent *agent() const { return agent_.get(); }
  GstElement *pipeline() const { return pipeline_.get(); }
  // The sample viewer's decrypted / received SRTP packets.
  guint64 sample_decrypted() const { return sample_decrypted_; }
  guint64 sample_received() const { return sample_received_; }

  // Internal.
  void add_viewer(guint stream, LeanViewer *v);
  void remove_viewer(guint stream);
  // A viewer left set-up (first RTP, failure or stop): once every viewer
  // has, the host ticks slowly.
  void viewer_settled() { unsettled_--; }
  // Host thread: read `fd` (stream's selected ICE socket) with recvmmsg.
  bool watch_direct(int fd, guint stream);
  void unwatch_direct(int fd);
  void read_directly_later(guint stream);  // from libnice's receive callback
  GMainContext *parking_context() const { return parking_ctx_.get(); }
  bool take_sample() { return !sample_taken_.exchange(true); }
  std::atomic<guint64> sample_decrypted_{0}, sample_received_{0};

 private:
  static gboolean send_rtcp_all(gpointer self);
  void on_component_state(guint stream, guint state);
  void drain_direct();  // host thread

  int epoll_fd_ = -1;
  std::atomic<int> unsettled_{0};
  gobj::Ref<GMainContext> ctx_;
  gobj::Ref<GMainContext> parking_ctx_;  // never iterated (see above)
  std::atomic<bool> quit_{false};
  std::thread thread_;
  gobj::Ref<NiceAgent> agent_;
  gobj::Ref<GstElement> pipeline_;
  gobj::Ref<GSource> rtcp_timer_;
  std::mutex lock_;
  std::map<guint, LeanViewer *> viewers_;  // by nice stream id, under lock_
  std::atomic<bool> sample_taken_{false};
};

class LeanViewer : public ViewerBase {
 public:
  LeanViewer(LeanHost &host, std::string endpoint);
  ~LeanViewer() override;
  void start() override;
  void stop() override;  // DELETEs the session (if answered) and frees the stream and elements

  guint64 bytes() const override { return bytes_; }
  guint64 packets() const override { return packets_; }
  guint64 lost() const override;
  bool connected() const override { return first_rtp_seen_; }
  bool failed() const override;
  std::string error() const override;
  ViewerTimes times() const override;

  // Internal (host thread).
  void on_packet(const guint8 *data, guint len);
  static void on_nice_packet(NiceAgent *, guint, guint, guint len, gchar *buf, gpointer self);
  void on_ice_state(guint state);
  void send_rtcp();
  void fail(const std::string &why);
  int direct_fd() const { return direct_fd_; }  // host thread; -1 while libnice reads
  void read_directly();                          // host thread, after the first RTP

 private:
  void settle();  // once: leaves the host's set-up count
  std::string build_offer(std::string *err);
  void on_answer(HttpReply r);  // HTTP worker thread
  void apply_answer(const std::string &sdp);  // host thread
  void start_dtls();                          // host thread
  void push_in(const guint8 *data, guint len);

  LeanHost &host_;
  std::string endpoint_, location_;
  guint stream_ = 0;
  bool sample_ = false, dtls_client_ = false, dtls_started_ = false, ice_up_ = false;
  bool sender_parked_ = false;
  std::atomic<bool> settled_{false};
  gobj::Ref<GSocket> direct_socket_;  // libnice's; held while in the host's epoll set
  int direct_fd_ = -1;
  gobj::Ref<GstElement> bin_, dec_, enc_, sink_;
  gobj::Ref<GstPad> in_pad_;    // ours -> dtlssrtpdec sink (DTLS; SRTP for the sample)
  gobj::Ref<GstPad> rtcp_pad_;  // ours -> dtlssrtpenc rtcp_sink_0
  gobj::Ref<GstBuffer> rr_;
  guint32 ssrc_ = 0;
  std::atomic<bool> keyed_{false}, stopped_{false};
  std::atomic<guint64> bytes_{0}, packets_{0};
  std::atomic<bool> first_rtp_seen_{false};
  mutable std::mutex lock_;
  std::string error_;
  ViewerTimes t_;
  SeqTracker seq_;
};

}  // namespace bench
