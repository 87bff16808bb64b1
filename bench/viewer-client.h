// A lean WHEP viewer for the load generator and the join benchmark: one
// recvonly webrtcbin (VP8), offer POSTed with libsoup on a worker thread,
// RTP counted on a pad probe (bytes, packets, loss from sequence gaps) and
// dropped in a fakesink - no depayloading or decoding, except for viewers
// created with decode=true (rtpvp8depay ! vp8dec, decoded frames counted) that
// prove the counted packets are real video.
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <string>

namespace bench {

struct ViewerTimes {
  double post = 0, answer = 0, first_rtp = 0, first_frame = 0;  // ms (now_ms clock), 0 = not yet
};

// Loss from RTP sequence gaps: the 16-bit seq extended around the highest
// seen; expected = highest - first + 1.
class SeqTracker {
 public:
  bool add(guint16 seq);  // true for the first packet
  guint64 expected() const { return have_ ? guint64(max_ext_ - first_) + 1 : 0; }

 private:
  guint32 first_ = 0, max_ext_ = 0;
  bool have_ = false;
};

// What the benchmarks need from a viewer, whatever its implementation:
// Viewer (a webrtcbin) below or LeanViewer (lean-viewer.h).
class ViewerBase {
 public:
  virtual ~ViewerBase() = default;
  virtual void start() = 0;  // async: offer -> POST -> answer; failures land in error()
  virtual void stop() = 0;
  virtual guint64 bytes() const = 0;  // RTP bytes received (header included)
  virtual guint64 packets() const = 0;
  virtual guint64 lost() const = 0;
  virtual guint64 frames() const { return 0; }  // decoded frames (decoding viewers only)
  virtual bool connected() const = 0;           // first RTP packet received
  virtual bool failed() const = 0;
  virtual std::string error() const = 0;
  virtual ViewerTimes times() const = 0;
};

class Viewer : public ViewerBase {
 public:
  Viewer(GstElement *pipeline, std::string endpoint, bool decode);
  ~Viewer() override;
  void start() override;
  void stop() override;  // removes the webrtcbin from the pipeline (no DELETE: the relay times out / is killed)

  guint64 bytes() const override { return bytes_; }
  guint64 packets() const override { return packets_; }
  guint64 lost() const override;
  guint64 frames() const override { return frames_; }
  bool connected() const override { return first_rtp_seen_; }
  bool failed() const override;
  std::string error() const override;
  ViewerTimes times() const override;

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
  SeqTracker seq_;
};

// WHEP signalling for both viewer kinds, on a few HTTP worker threads (one
// SoupSession each, sync API), so no signalling waits on a streaming thread.
struct HttpReply {
  guint status = 0;
  std::string body, location, error;  // location resolved against the URL; error: transport failure
  double t_post = 0, t_answer = 0;    // now_ms() around the request
};
void http_post_sdp(const std::string &url, const std::string &sdp, std::function<void(HttpReply)> done);
// Fire and forget (the answer is not waited for).
void http_delete(const std::string &url);

// Stops the HTTP worker threads (call once before exit; pending jobs are dropped).
void shutdown_http_workers();

}  // namespace bench
