// A lean WHEP viewer for the load generator and the join benchmark: one
// recvonly webrtcbin (VP8), offer POSTed with libsoup on a worker thread,
// RTP counted on a pad probe (bytes, packets, loss from sequence gaps) and
// dropped in a fakesink - no depayloading or decoding, except for viewers
// created with decode=true (rtpvp8depay ! vp8dec, decoded frames counted) that
// prove the counted packets are real video.
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <mutex>
#include <string>

namespace bench {

struct ViewerTimes {
  double post = 0, answer = 0, first_rtp = 0, first_frame = 0;  // ms (now_ms clock), 0 = not yet
};

class Viewer {
 public:
  Viewer(GstElement *pipeline, std::string endpoint, bool decode);
  ~Viewer();
  void start();  // async: offer -> POST -> answer; failures land in error()
  void stop();   // removes the webrtcbin from the pipeline (no DELETE: the relay times out / is killed)

  guint64 bytes() const { return bytes_; }
  guint64 packets() const { return packets_; }
  guint64 lost() const;
  guint64 frames() const { return frames_; }
  bool connected() const { return first_rtp_seen_; }
  bool failed() const;
  std::string error() const;
  ViewerTimes times() const;

  // Internal (callbacks).
  void on_answer(guint status, const std::string &body);
  void on_rtp(GstBuffer *buf);
  void on_frame();
  void fail(const std::string &why);
  void pad_added(GstPad *pad);
  GstElement *webrtcbin() const { return wb_; }
  const std::string &endpoint() const { return endpoint_; }
  std::atomic<bool> offer_sent{false};

 private:
  GstElement *pipeline_;
  GstElement *wb_ = nullptr;
  std::string endpoint_;
  bool decode_;
  std::atomic<guint64> bytes_{0}, packets_{0}, frames_{0};
  std::atomic<bool> first_rtp_seen_{false};
  mutable std::mutex lock_;
  std::string error_;
  ViewerTimes t_;
  guint32 first_seq_ = 0, max_ext_seq_ = 0;
  bool have_seq_ = false;
};

// Stops the HTTP worker threads (call once before exit).
void shutdown_http_workers();

}  // namespace bench
