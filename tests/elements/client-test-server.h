// Test-side servers for the client elements (whipsink, whepsrc): a SoupServer
// on 127.0.0.1 in its own thread whose answers a test scripts, and a minimal
// WebRTC peer (plain webrtcbin) answering offers and decoding or sending.
#pragma once

#include <gst/gst.h>
#include <libsoup/soup.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "gobj.h"

namespace test {

struct SeenRequest {
  std::string method, path, authorization, content_type, body;
};

struct Reply {
  guint status = 200;
  std::string content_type;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

class TestHttpServer {
 public:
  // respond() may be called from any thread, at most once; never calling it
  // leaves the request hanging (the "server never answers" case).
  using Respond = std::function<void(Reply)>;
  using Handler = std::function<void(const SeenRequest &, Respond)>;

  explicit TestHttpServer(Handler handler);
  ~TestHttpServer();
  guint port() const { return port_; }
  std::string url(const std::string &path) const;
  std::vector<SeenRequest> requests() const;
  int count(const std::string &method) const;

 private:
  static gpointer thread_main(gpointer data);
  Handler handler_;
  GMainContext *ctx_ = nullptr;
  GMainLoop *loop_ = nullptr;
  GThread *thread_ = nullptr;
  SoupServer *server_ = nullptr;
  guint port_ = 0;
  mutable std::mutex lock_;
  std::vector<SeenRequest> seen_;
  std::vector<gobj::Ref<SoupServerMessage>> hanging_;
};

// A receiving WebRTC peer: answers offers (sendonly → recvonly), decodes
// what arrives and counts decoded video frames and audio buffers.
class ReceivingPeer {
 public:
  ReceivingPeer();
  ~ReceivingPeer();
  // Handler for TestHttpServer: POST → 201 + relative Location
  // "/whip/session-1"; DELETE on it → 200.
  void handle(const SeenRequest &req, TestHttpServer::Respond respond);
  guint64 video_frames() const { return video_frames_.load(); }
  guint64 audio_buffers() const { return audio_buffers_.load(); }
  std::vector<std::string> codecs() const;

 private:
  static void on_pad_added(GstElement *webrtc, GstPad *pad, gpointer data);
  gobj::Ref<GstElement> pipeline_;
  gobj::Ref<GstElement> webrtc_;
  std::atomic<guint64> video_frames_{0};
  std::atomic<guint64> audio_buffers_{0};
  mutable std::mutex lock_;
  std::vector<std::string> codecs_;
};

// A sending WebRTC peer: a live VP8 test video into a webrtcbin that answers
// a recvonly offer with sendonly.
class SendingPeer {
 public:
  SendingPeer();
  ~SendingPeer();
  bool ready(guint timeout_ms);  // payloader caps known
  void handle(const SeenRequest &req, TestHttpServer::Respond respond);
  // The peer vanishes: media and RTCP stop, no signalling is sent.
  void stop() { gst_element_set_state(pipeline_.get(), GST_STATE_NULL); }

 private:
  gobj::Ref<GstElement> pipeline_;
  gobj::Ref<GstElement> webrtc_;
  gobj::Ref<GstElement> pay_;
};

}  // namespace test
