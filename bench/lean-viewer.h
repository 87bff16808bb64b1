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
// The host thread polls every viewer's socket once per 4 ms tick rather
// than waking per packet: its cost is per tick, not per packet.
//
// Threads: the host's one, plus dtlsenc's send task per viewer during the
// handshake only: it is stopped once the first RTP packet shows the relay
// completed DTLS (the RRs do not go through it), so a connected viewer costs
// no thread.
#pragma once

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
  bool take_sample() { return !sample_taken_.exchange(true); }
  std::atomic<guint64> sample_decrypted_{0}, sample_received_{0};

 private:
  static gboolean send_rtcp_all(gpointer self);
  void on_component_state(guint stream, guint state);

  gobj::Ref<GMainContext> ctx_;
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
  void on_ice_state(guint state);
  void send_rtcp();
  void fail(const std::string &why);

 private:
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
