// End to end through the four real elements, in one process, on loopback:
//
//   whipsink  --WHIP-->  whipserversrc ! queue ! whepserversink  --WHEP-->  whepsrc xN
//
// The relay uses the elements' standalone listeners (the gst-launch way), the
// publisher and every viewer are separate pipelines, as they would be
// separate programs. Decoded media is counted on fakesink pads behind each
// whepsrc (whepsrc decodes by default). Every ICE agent gathers on 127.0.0.1
// only; every wait is bounded.
#include <gst/gst.h>
#include <gst/rtp/rtp.h>
#include <gst/video/video.h>
#include <gst/webrtc/webrtc.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "client-test-server.h"
#include "harness.h"
#include "webrtc-negotiation.h"

namespace {

bool have(const char *factory) {
  gobj::Ref<GstElementFactory> f = gobj::adopt(gst_element_factory_find(factory));
  return static_cast<bool>(f);
}

bool have_our_elements() {
  for (const char *e : {"whipsink", "whipserversrc", "whepserversink", "whepsrc"})
    if (!test::factory_is_ours(e)) return false;
  return true;
}

// Timing of the buffers through one pad: count, first/last arrival and the
// largest gap between two consecutive buffers since the last reset_gap().
class FrameClock {
 public:
  ~FrameClock() {
    if (pad_ && probe_) gst_pad_remove_probe(pad_.get(), probe_);
  }
  void attach(GstPad *pad) {
    std::lock_guard<std::mutex> l(lock_);
    pad_ = gobj::ref(pad);
    probe_ = gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, &FrameClock::probe, this, nullptr);
  }
  guint64 count() const { return count_.load(); }
  // Media type of the pad's current caps ("" before caps), e.g. video/x-raw.
  std::string media_type() const {
    std::lock_guard<std::mutex> l(lock_);
    if (!pad_) return "";
    gobj::Ref<GstCaps> caps = gobj::adopt(gst_pad_get_current_caps(pad_.get()));
    return caps ? gst_structure_get_name(gst_caps_get_structure(caps.get(), 0)) : "";
  }
  gint64 first_us() const {
    std::lock_guard<std::mutex> l(lock_);
    return first_;
  }
  gint64 last_us() const {
    std::lock_guard<std::mutex> l(lock_);
    return last_;
  }
  // Luma of the last decoded frame at (fx, fy), fractions of its size,
  // from the fakesink's last sample; -1 if there is none or it is not YUV.
  int last_luma(double fx, double fy) const {
    gobj::Ref<GstElement> sink;
    {
      std::lock_guard<std::mutex> l(lock_);
      if (pad_) sink = gobj::adopt(gst_pad_get_parent_element(pad_.get()));
    }
    if (!sink) return -1;
    gobj::Ref<GstSample> sample;
    g_object_get(sink.get(), "last-sample", static_cast<GstSample **>(sample.out()), nullptr);
    GstVideoInfo vi;
    if (!sample || !gst_video_info_from_caps(&vi, gst_sample_get_caps(sample.get())) ||
        !GST_VIDEO_INFO_IS_YUV(&vi))
      return -1;
    GstVideoFrame f;
    if (!gst_video_frame_map(&f, &vi, gst_sample_get_buffer(sample.get()), GST_MAP_READ)) return -1;
    const auto *y = static_cast<const guint8 *>(GST_VIDEO_FRAME_PLANE_DATA(&f, 0));
    const int v = y[int(fy * GST_VIDEO_FRAME_HEIGHT(&f)) * GST_VIDEO_FRAME_PLANE_STRIDE(&f, 0) +
                    int(fx * GST_VIDEO_FRAME_WIDTH(&f))];
    gst_video_frame_unmap(&f);
    return v;
  }
  // Decoding has lasted this long (first to last buffer), µs.
  gint64 span_us() const {
    std::lock_guard<std::mutex> l(lock_);
    return first_ ? last_ - first_ : 0;
  }
  void reset_gap() {
    std::lock_guard<std::mutex> l(lock_);
    max_gap_ = 0;
    max_gap_end_ = 0;
    gap_from_ = g_get_monotonic_time();
  }
  // When the largest gap ended (monotonic µs; 0 if none).
  gint64 max_gap_end_us() const {
    std::lock_guard<std::mutex> l(lock_);
    return max_gap_end_;
  }
  // Largest gap since reset_gap(), including the time since the last buffer.
  gint64 max_gap_us() const {
    std::lock_guard<std::mutex> l(lock_);
    const gint64 now = g_get_monotonic_time();
    return std::max(max_gap_, now - std::max(last_, gap_from_));
  }

 private:
  static GstPadProbeReturn probe(GstPad *, GstPadProbeInfo *, gpointer data) {
    auto *self = static_cast<FrameClock *>(data);
    const gint64 now = g_get_monotonic_time();
    std::lock_guard<std::mutex> l(self->lock_);
    if (!self->first_) self->first_ = now;
    if (self->gap_from_) {
      const gint64 gap = now - std::max(self->last_, self->gap_from_);
      if (gap > self->max_gap_) {
        self->max_gap_ = gap;
        self->max_gap_end_ = now;
      }
    }
    self->last_ = now;
    self->count_++;
    return GST_PAD_PROBE_OK;
  }
  mutable std::mutex lock_;
  gobj::Ref<GstPad> pad_;
  gulong probe_ = 0;
  std::atomic<guint64> count_{0};
  gint64 first_ = 0, last_ = 0, gap_from_ = 0, max_gap_ = 0, max_gap_end_ = 0;
};

// How long a receiver holds each video packet between its arrival from the
// network (SRTP; the RTP header is in the clear) and the depayloader:
// jitterbuffer waits plus scheduling. Diagnostics for a stall that a viewer
// adds on its own.
class HoldClock {
 public:
  ~HoldClock() {
    if (in_ && in_probe_) gst_pad_remove_probe(in_.get(), in_probe_);
    if (out_ && out_probe_) gst_pad_remove_probe(out_.get(), out_probe_);
  }
  // in: a transport pad (nicesrc); out: the depayloader's sink pad.
  void attach(GstPad *in, GstPad *out) {
    in_ = gobj::ref(in);
    out_ = gobj::ref(out);
    in_probe_ = gst_pad_add_probe(in, GST_PAD_PROBE_TYPE_BUFFER, &HoldClock::arrived, this, nullptr);
    out_probe_ = gst_pad_add_probe(out, GST_PAD_PROBE_TYPE_BUFFER, &HoldClock::left, this, nullptr);
  }
  void reset() {
    std::lock_guard<std::mutex> l(lock_);
    max_hold_ = max_hold_end_ = max_arrival_gap_ = max_arrival_gap_end_ = 0;
    last_arrival_ = g_get_monotonic_time();
  }
  // Largest gap between two video packets arriving since reset() (the
  // time since the last one included).
  gint64 max_arrival_gap_us() const {
    std::lock_guard<std::mutex> l(lock_);
    return std::max(max_arrival_gap_, g_get_monotonic_time() - last_arrival_);
  }
  gint64 max_arrival_gap_end_us() const {
    std::lock_guard<std::mutex> l(lock_);
    return max_arrival_gap_end_;
  }
  gint64 max_hold_us() const {
    std::lock_guard<std::mutex> l(lock_);
    return max_hold_;
  }
  gint64 max_hold_end_us() const {
    std::lock_guard<std::mutex> l(lock_);
    return max_hold_end_;
  }

 private:
  static GstPadProbeReturn arrived(GstPad *, GstPadProbeInfo *info, gpointer data) {
    auto *self = static_cast<HoldClock *>(data);
    guint8 h[12];
    // RTP of the video SSRC (learnt at the depayloader) only.
    if (gst_buffer_extract(GST_PAD_PROBE_INFO_BUFFER(info), 0, h, 12) != 12 || (h[0] & 0xc0) != 0x80)
      return GST_PAD_PROBE_OK;
    const guint32 ssrc = GST_READ_UINT32_BE(h + 8);
    const gint64 now = g_get_monotonic_time();
    std::lock_guard<std::mutex> l(self->lock_);
    if (!self->ssrc_ || ssrc != self->ssrc_) return GST_PAD_PROBE_OK;
    if (self->last_arrival_ && now - self->last_arrival_ > self->max_arrival_gap_) {
      self->max_arrival_gap_ = now - self->last_arrival_;
      self->max_arrival_gap_end_ = now;
    }
    self->last_arrival_ = now;
    gint64 &t = self->arrived_[(h[2] << 8) | h[3]];
    if (!t) t = now;  // a retransmission keeps the first arrival
    return GST_PAD_PROBE_OK;
  }
  static GstPadProbeReturn left(GstPad *, GstPadProbeInfo *info, gpointer data) {
    auto *self = static_cast<HoldClock *>(data);
    GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
    if (!gst_rtp_buffer_map(GST_PAD_PROBE_INFO_BUFFER(info), GST_MAP_READ, &rtp)) return GST_PAD_PROBE_OK;
    const guint16 seq = gst_rtp_buffer_get_seq(&rtp);
    const guint32 ssrc = gst_rtp_buffer_get_ssrc(&rtp);
    gst_rtp_buffer_unmap(&rtp);
    const gint64 now = g_get_monotonic_time();
    std::lock_guard<std::mutex> l(self->lock_);
    self->ssrc_ = ssrc;
    gint64 &t = self->arrived_[seq];
    if (t && now - t > self->max_hold_) {
      self->max_hold_ = now - t;
      self->max_hold_end_ = now;
    }
    t = 0;
    return GST_PAD_PROBE_OK;
  }
  mutable std::mutex lock_;
  gobj::Ref<GstPad> in_, out_;
  gulong in_probe_ = 0, out_probe_ = 0;
  std::vector<gint64> arrived_ = std::vector<gint64>(65536, 0);
  guint32 ssrc_ = 0;
  gint64 last_arrival_ = 0, max_arrival_gap_ = 0, max_arrival_gap_end_ = 0;
  gint64 max_hold_ = 0, max_hold_end_ = 0;
};

// whipserversrc (listener on whip_port) ! queue ! whepserversink (listener on
// whep_port): each sometimes pad of whipserversrc gets a queue and the
// same-named request pad of whepserversink.
struct Relay {
  gobj::Ref<GstElement> pipeline;
  GstElement *in = nullptr;   // owned by pipeline
  GstElement *out = nullptr;  // owned by pipeline
  guint whip_port = 0, whep_port = 0;
  std::unique_ptr<test::BusWatcher> bus;
  FrameClock source_video;         // encoded video leaving whipserversrc
  FrameClock relayed_video;        // encoded video entering whepserversink
  std::atomic<guint64> keyframes{0};
  std::atomic<guint64> entered_video{0}, entered_audio{0};  // buffers into whepserversink
  std::atomic<gint64> last_keyframe_us{0};

  Relay() {
    whip_port = test::free_tcp_port();
    whep_port = test::free_tcp_port();
    pipeline = gobj::sink(gst_pipeline_new("relay"));
    in = gst_element_factory_make("whipserversrc", nullptr);
    out = gst_element_factory_make("whepserversink", nullptr);
    if (!in || !out) {
      ADD_FAILURE() << "whipserversrc/whepserversink missing";
      return;
    }
    g_object_set(in, "ice-addresses", "127.0.0.1", "port", whip_port, nullptr);
    g_object_set(out, "ice-addresses", "127.0.0.1", "port", whep_port, nullptr);
    gst_bin_add_many(GST_BIN(pipeline.get()), in, out, nullptr);
    g_signal_connect(in, "pad-added", G_CALLBACK(&Relay::on_pad), this);
    bus = std::make_unique<test::BusWatcher>(pipeline.get());
  }
  ~Relay() {
    if (!pipeline) return;
    gst_element_set_state(pipeline.get(), GST_STATE_NULL);
    if (in) g_signal_handlers_disconnect_by_data(in, this);
  }
  bool play() {
    return pipeline && gst_element_set_state(pipeline.get(), GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE;
  }
  std::string whip_url() const { return "http://127.0.0.1:" + std::to_string(whip_port) + "/whip"; }
  std::string whep_url() const { return "http://127.0.0.1:" + std::to_string(whep_port) + "/whep"; }
  bool publishing() const {
    gboolean p = FALSE;
    g_object_get(in, "publishing", &p, nullptr);
    return p;
  }
  guint viewer_count() const {
    guint n = 0;
    g_object_get(out, "viewer-count", &n, nullptr);
    return n;
  }
  // Both streams reached whepserversink with caps, and each pad's first
  // buffer was payloaded: viewers can be answered. (whepserversink learns a
  // stream's RTP caps from its payloader, on the first buffer; the pad's
  // caps alone left a window in which a viewer got 503. A second buffer at
  // the pad means the first one's chain call has returned.)
  bool stream_ready() const {
    for (const char *name : {"video_0", "audio_0"}) {
      gobj::Ref<GstPad> p = gobj::adopt(gst_element_get_static_pad(out, name));
      if (!p || !gst_pad_has_current_caps(p.get())) return false;
    }
    return entered_video >= 2 && entered_audio >= 2;
  }

 private:
  static void on_pad(GstElement *, GstPad *pad, gpointer data) {
    auto *self = static_cast<Relay *>(data);
    GstElement *queue = gst_element_factory_make("queue", nullptr);
    gst_bin_add(GST_BIN(self->pipeline.get()), queue);
    gst_element_sync_state_with_parent(queue);
    gobj::Ref<GstPad> qsink = gobj::adopt(gst_element_get_static_pad(queue, "sink"));
    gobj::Ref<GstPad> qsrc = gobj::adopt(gst_element_get_static_pad(queue, "src"));
    gobj::Ref<GstPad> target =
        gobj::adopt(gst_element_request_pad_simple(self->out, GST_PAD_NAME(pad)));
    if (!target) {
      ADD_FAILURE() << "whepserversink refused pad " << GST_PAD_NAME(pad);
      return;
    }
    std::atomic<guint64> *entered =
        g_str_has_prefix(GST_PAD_NAME(pad), "video_") ? &self->entered_video : &self->entered_audio;
    gst_pad_add_probe(
        target.get(), GST_PAD_PROBE_TYPE_BUFFER,
        +[](GstPad *, GstPadProbeInfo *, gpointer d) -> GstPadProbeReturn {
          (*static_cast<std::atomic<guint64> *>(d))++;
          return GST_PAD_PROBE_OK;
        },
        entered, nullptr);
    if (g_str_has_prefix(GST_PAD_NAME(pad), "video_")) {
      self->source_video.attach(pad);
      self->relayed_video.attach(target.get());
      gst_pad_add_probe(
          target.get(), GST_PAD_PROBE_TYPE_BUFFER,
          +[](GstPad *, GstPadProbeInfo *info, gpointer d) -> GstPadProbeReturn {
            auto *r = static_cast<Relay *>(d);
            if (!GST_BUFFER_FLAG_IS_SET(GST_PAD_PROBE_INFO_BUFFER(info), GST_BUFFER_FLAG_DELTA_UNIT)) {
              r->keyframes++;
              r->last_keyframe_us = g_get_monotonic_time();
            }
            return GST_PAD_PROBE_OK;
          },
          self, nullptr);
    }
    EXPECT_EQ(gst_pad_link(qsrc.get(), target.get()), GST_PAD_LINK_OK);
    EXPECT_EQ(gst_pad_link(pad, qsink.get()), GST_PAD_LINK_OK);
  }
};

// A gst-launch style pipeline with its bus watched (the publisher).
struct Launch {
  gobj::Ref<GstElement> pipeline;
  std::unique_ptr<test::BusWatcher> bus;
  explicit Launch(const std::string &desc) {
    gobj::Unique<GError> err;
    pipeline = gobj::sink(gst_parse_launch(desc.c_str(), gobj::out(err)));
    if (!pipeline || err) {
      ADD_FAILURE() << "cannot build '" << desc << "': " << (err ? err->message : "");
      return;
    }
    bus = std::make_unique<test::BusWatcher>(pipeline.get());
  }
  ~Launch() { stop(); }
  bool play() {
    return pipeline && gst_element_set_state(pipeline.get(), GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE;
  }
  void stop() {
    if (pipeline) gst_element_set_state(pipeline.get(), GST_STATE_NULL);
  }
  std::string errors() const { return bus && bus->has_error() ? bus->error_text() : ""; }
};

// Raw live test video + audio into whipsink, which encodes them.
std::string raw_publisher(const std::string &url, const std::string &codec, int w, int h, int fps) {
  return "videotestsrc is-live=true pattern=ball ! video/x-raw,width=" + std::to_string(w) +
         ",height=" + std::to_string(h) + ",framerate=" + std::to_string(fps) +
         "/1 ! whipsink name=ws ice-addresses=127.0.0.1 timeout=10 video-bitrate=300 video-codec=" +
         codec + " whip-endpoint=" + url + " audiotestsrc is-live=true wave=sine ! ws.";
}

// One WHEP viewer: whepsrc in its own pipeline, each decoded pad into a
// fakesink whose buffers are timed.
struct Viewer {
  gobj::Ref<GstElement> pipeline;
  gobj::Ref<GstElement> src;
  std::unique_ptr<test::BusWatcher> bus;
  FrameClock video, audio;
  gint64 started_us = 0;

  explicit Viewer(const std::string &url) {
    pipeline = gobj::sink(gst_pipeline_new(nullptr));
    src = gobj::ref(gst_element_factory_make("whepsrc", nullptr));
    g_object_set(src.get(), "whep-endpoint", url.c_str(), "ice-addresses", "127.0.0.1", "timeout", 10,
                 nullptr);
    gst_bin_add(GST_BIN(pipeline.get()), src.get());
    g_signal_connect(src.get(), "pad-added", G_CALLBACK(&Viewer::on_pad), this);
    bus = std::make_unique<test::BusWatcher>(pipeline.get());
  }
  ~Viewer() {
    stop();
    g_signal_handlers_disconnect_by_data(src.get(), this);
  }
  bool play() {
    started_us = g_get_monotonic_time();
    return gst_element_set_state(pipeline.get(), GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE;
  }
  // NULL: whepsrc DELETEs its session.
  void stop() { gst_element_set_state(pipeline.get(), GST_STATE_NULL); }
  std::string resource_url() const {
    g_autofree gchar *url = nullptr;
    g_object_get(src.get(), "resource-url", &url, nullptr);
    return gobj::str_or(url);
  }
  std::string errors() const { return bus->has_error() ? bus->error_text() : ""; }
  // Clocks on the receive path: video packets as they arrive from the
  // network (whepsrc's nicesrc) and as they leave its jitterbuffer (the
  // depayloader's sink pad), which tells a stall in delivery from one in
  // the receiver. Call once ICE is up.
  bool watch_receive_path() {
    gobj::Ref<GstElement> nicesrc = whipwhep::find_by_factory(pipeline.get(), "nicesrc");
    if (!nicesrc) return false;
    gobj::Ref<GstPad> pad = gobj::adopt(gst_element_get_static_pad(nicesrc.get(), "src"));
    gobj::Ref<GstElement> depay = whipwhep::find_by_factory(pipeline.get(), "rtpvp8depay");
    if (!depay) return false;
    gobj::Ref<GstPad> rtp = gobj::adopt(gst_element_get_static_pad(depay.get(), "sink"));
    jitterbuffered.attach(rtp.get());
    hold.attach(pad.get(), rtp.get());
    return true;
  }
  // Diagnostics: the receiver's inbound-rtp statistics (lost, NACK, PLI).
  std::string inbound_stats() const {
    gobj::Ref<GstElement> webrtc = whipwhep::find_by_factory(pipeline.get(), "webrtcbin");
    if (!webrtc) return "no webrtcbin";
    GstPromise *promise = gst_promise_new();
    g_signal_emit_by_name(webrtc.get(), "get-stats", nullptr, promise);
    std::string out;
    if (gst_promise_wait(promise) == GST_PROMISE_RESULT_REPLIED) {
      gst_structure_foreach(
          gst_promise_get_reply(promise),
          [](GQuark, const GValue *v, gpointer data) -> gboolean {
            if (!GST_VALUE_HOLDS_STRUCTURE(v)) return TRUE;
            const GstStructure *st = gst_value_get_structure(v);
            GstWebRTCStatsType type;
            if (gst_structure_get(st, "type", GST_TYPE_WEBRTC_STATS_TYPE, &type, nullptr) &&
                type == GST_WEBRTC_STATS_INBOUND_RTP) {
              g_autofree gchar *text = gst_structure_to_string(st);
              *static_cast<std::string *>(data) += std::string(text) + "\n";
            }
            return TRUE;
          },
          &out);
    }
    gst_promise_unref(promise);
    whipwhep::for_each_by_factory(pipeline.get(), "rtpjitterbuffer", [&](GstElement *jitterbuffer) {
      gobj::Unique<GstStructure> st;
      g_object_get(jitterbuffer, "stats", static_cast<GstStructure **>(gobj::out(st)), nullptr);
      g_autofree gchar *text = st ? gst_structure_to_string(st.get()) : nullptr;
      out += std::string(GST_OBJECT_NAME(jitterbuffer)) + ": " + gobj::str_or(text) + "\n";
      return true;
    });
    return out;
  }
  FrameClock jitterbuffered;  // video RTP leaving its jitterbuffer (watch_receive_path)
  HoldClock hold;             // arrivals, and each packet's wait before the depayloader

 private:
  static void on_pad(GstElement *, GstPad *pad, gpointer data) {
    auto *self = static_cast<Viewer *>(data);
    GstElement *sink = gst_element_factory_make("fakesink", nullptr);
    g_object_set(sink, "sync", FALSE, "async", FALSE, nullptr);
    gst_bin_add(GST_BIN(self->pipeline.get()), sink);
    gst_element_sync_state_with_parent(sink);
    gobj::Ref<GstPad> sp = gobj::adopt(gst_element_get_static_pad(sink, "sink"));
    (g_str_has_prefix(GST_PAD_NAME(pad), "video_") ? self->video : self->audio).attach(sp.get());
    EXPECT_EQ(gst_pad_link(pad, sp.get()), GST_PAD_LINK_OK);
  }
};

std::string ms(gint64 us) { return std::to_string(us / 1000) + " ms"; }

// Relay up, publisher (launch description from make_desc(url)) live and the
// stream at whepserversink: the state before viewers join.
void start_chain(Relay &relay, std::unique_ptr<Launch> &pub, const std::string &desc) {
  ASSERT_TRUE(relay.play());
  pub = std::make_unique<Launch>(desc);
  ASSERT_TRUE(pub->play());
  // Viewers before this point would get 503 "no publisher yet".
  ASSERT_TRUE(test::wait_for(
      [&] { return (relay.publishing() && relay.stream_ready()) || pub->bus->has_error() || relay.bus->has_error(); },
      20000))
      << "publisher: " << pub->errors() << " relay: " << relay.bus->error_text();
  ASSERT_FALSE(pub->bus->has_error()) << pub->errors();
  ASSERT_FALSE(relay.bus->has_error()) << relay.bus->error_text();
}

TEST(WhipToWhep, TwentyWhepsrcViewersDecodeVideoAndAudio) {
  if (!have_our_elements()) FAIL() << "the four elements are not all built";
  constexpr int kViewers = 20;
  const gint64 t0 = g_get_monotonic_time();
  Relay relay;
  std::unique_ptr<Launch> pub;
  start_chain(relay, pub, raw_publisher(relay.whip_url(), "vp8", 320, 240, 15));
  if (HasFatalFailure()) return;

  std::vector<std::unique_ptr<Viewer>> viewers;
  for (int i = 0; i < kViewers; i++) {
    viewers.push_back(std::make_unique<Viewer>(relay.whep_url()));
    ASSERT_TRUE(viewers.back()->play());
  }
  auto any_error = [&] {
    for (auto &v : viewers)
      if (v->bus->has_error()) return true;
    return false;
  };
  // Every viewer decodes for 3 s: 15 fps video and 20 ms Opus frames give
  // 45 frames and 150 audio buffers; ask for a little less of each.
  constexpr gint64 kSpan = 3 * G_USEC_PER_SEC;
  auto all_decoded = [&] {
    for (auto &v : viewers)
      if (v->video.count() < 30 || v->audio.count() < 100 || v->video.span_us() < kSpan ||
          v->audio.span_us() < kSpan)
        return false;
    return true;
  };
  const bool ok = test::wait_for([&] { return all_decoded() || any_error(); }, 35000);
  gint64 worst_join = 0;
  for (int i = 0; i < kViewers; i++) {
    const Viewer &v = *viewers[i];
    EXPECT_EQ(v.errors(), "") << "viewer " << i;
    EXPECT_GE(v.video.count(), 30u) << "viewer " << i;
    EXPECT_GE(v.audio.count(), 100u) << "viewer " << i;
    EXPECT_GE(v.video.span_us(), kSpan) << "viewer " << i;
    EXPECT_GE(v.audio.span_us(), kSpan) << "viewer " << i;
    EXPECT_EQ(v.video.media_type(), "video/x-raw") << "viewer " << i;
    EXPECT_EQ(v.audio.media_type(), "audio/x-raw") << "viewer " << i;
    if (v.video.first_us()) worst_join = std::max(worst_join, v.video.first_us() - v.started_us);
  }
  EXPECT_TRUE(ok);
  EXPECT_EQ(relay.viewer_count(), guint(kViewers));
  EXPECT_FALSE(relay.bus->has_error()) << relay.bus->error_text();
  EXPECT_FALSE(pub->bus->has_error()) << pub->errors();
  std::printf("20 viewers: slowest first frame %s after its start; all decoded 3 s after %s\n",
              ms(worst_join).c_str(), ms(g_get_monotonic_time() - t0).c_str());
  RecordProperty("slowest_first_frame_ms", int(worst_join / 1000));

  // Viewers leave (DELETE): the element forgets them all.
  viewers.clear();
  EXPECT_TRUE(test::wait_for([&] { return relay.viewer_count() == 0; }, 10000))
      << relay.viewer_count() << " viewers left";
}

// Keyframes made of several slices (x264's sliced threads, as OBS and
// x264-based encoders send) arrive whole: every viewer's picture is white
// top and bottom. (GStreamer 1.22's rtph264pay config-interval=-1 put
// SPS/PPS before each IDR slice, which split such keyframes: decoders kept
// only the last slice, the top of the picture stayed green.)
TEST(WhipToWhep, H264PublisherThreeWhepsrcViewersDecode) {
  if (!have_our_elements()) FAIL() << "the four elements are not all built";
  if (!have("x264enc")) GTEST_SKIP() << "x264enc (gstreamer1.0-plugins-ugly) is not installed";
  if (!have("avdec_h264") && !have("openh264dec")) FAIL() << "no H.264 decoder";
  Relay relay;
  std::unique_ptr<Launch> pub;
  start_chain(relay, pub,
              "videotestsrc is-live=true pattern=white ! video/x-raw,width=640,height=360,framerate=15/1 ! "
              "x264enc tune=zerolatency speed-preset=ultrafast threads=4 sliced-threads=true "
              "key-int-max=30 bitrate=300 ! video/x-h264,profile=constrained-baseline ! "
              "whipsink name=ws ice-addresses=127.0.0.1 timeout=10 whip-endpoint=" + relay.whip_url() +
                  " audiotestsrc is-live=true wave=sine ! ws.");
  if (HasFatalFailure()) return;
  {
    gobj::Ref<GstPad> p = gobj::adopt(gst_element_get_static_pad(relay.out, "video_0"));
    gobj::Ref<GstCaps> caps = gobj::adopt(gst_pad_get_current_caps(p.get()));
    ASSERT_TRUE(caps);
    EXPECT_STREQ(gst_structure_get_name(gst_caps_get_structure(caps.get(), 0)), "video/x-h264");
  }
  std::vector<std::unique_ptr<Viewer>> viewers;
  for (int i = 0; i < 3; i++) {
    viewers.push_back(std::make_unique<Viewer>(relay.whep_url()));
    ASSERT_TRUE(viewers.back()->play());
  }
  EXPECT_TRUE(test::wait_for(
      [&] {
        for (auto &v : viewers)
          if (v->bus->has_error()) return true;
        for (auto &v : viewers)
          if (v->video.count() < 45 || v->audio.count() < 100) return false;
        return true;
      },
      25000));
  for (int i = 0; i < 3; i++) {
    EXPECT_EQ(viewers[i]->errors(), "") << "viewer " << i;
    EXPECT_GE(viewers[i]->video.count(), 45u) << "viewer " << i;
    EXPECT_GE(viewers[i]->audio.count(), 100u) << "viewer " << i;
    EXPECT_EQ(viewers[i]->video.media_type(), "video/x-raw") << "viewer " << i;
    // White is luma 235; a lost slice is concealed as 0 (green) or left out.
    EXPECT_GT(viewers[i]->video.last_luma(0.5, 0.05), 200) << "viewer " << i << ": top of the picture";
    EXPECT_GT(viewers[i]->video.last_luma(0.5, 0.95), 200) << "viewer " << i << ": bottom";
  }
  EXPECT_FALSE(relay.bus->has_error()) << relay.bus->error_text();
}

// The publisher's encoder makes a keyframe every 10 s (pre-encoded VP8, so
// whipsink passes it through); a viewer joining mid-GOP can only decode early
// if its join makes whepserversink ask upstream for a keyframe, whipserversrc
// turn that into a PLI, and whipsink hand it to the encoder.
// Measured: from the viewer's 201 (whepsrc's resource-url becoming non-empty,
// polled every ~2 ms) to its first decoded frame leaving whepsrc.
// `audio` is the publisher's raw audio source (whipsink encodes it to Opus).
void late_join(const std::string &audio, gint64 bound_ms) {
  Relay relay;
  std::unique_ptr<Launch> pub;
  start_chain(relay, pub,
              "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 ! "
              "vp8enc keyframe-max-dist=300 deadline=1 cpu-used=16 target-bitrate=400000 ! "
              "whipsink name=ws ice-addresses=127.0.0.1 timeout=10 whip-endpoint=" +
                  relay.whip_url() + " " + audio + " ! ws.");
  if (::testing::Test::HasFatalFailure()) return;
  // Let the stream run 3 s (90 frames at 30 fps), and join at least 1.5 s
  // after the last keyframe (the publisher's start may bring one or two
  // requested keyframes): vp8enc's next natural keyframe is 10 s after the
  // last one, so without keyframe-on-join this viewer would wait >= 2 s.
  ASSERT_TRUE(test::wait_for(
      [&] {
        return relay.relayed_video.count() >= 90 &&
               g_get_monotonic_time() - relay.last_keyframe_us.load() >= 1500 * 1000;
      },
      12000))
      << relay.relayed_video.count() << " frames relayed, last keyframe "
      << ms(g_get_monotonic_time() - relay.last_keyframe_us.load()) << " ago";
  const guint64 keyframes_before = relay.keyframes.load();
  const gint64 since_keyframe = g_get_monotonic_time() - relay.last_keyframe_us.load();
  ASSERT_LT(since_keyframe, 8 * G_USEC_PER_SEC) << "too close to the next natural keyframe";

  Viewer viewer(relay.whep_url());
  ASSERT_TRUE(viewer.play());
  gint64 answered = 0;
  ASSERT_TRUE(test::wait_for(
      [&] {
        if (!answered && !viewer.resource_url().empty()) answered = g_get_monotonic_time();
        return (answered && viewer.video.count() > 0) || viewer.bus->has_error();
      },
      12000))
      << "no decoded frame; " << viewer.errors();
  ASSERT_EQ(viewer.errors(), "");
  const gint64 first = viewer.video.first_us();
  const gint64 answer_to_frame = first - answered;
  std::printf("late join (%s): answer -> first decoded frame %s (start -> answer %s; answer -> last "
              "keyframe at the relay %s); the previous keyframe was %s before the join; keyframes at "
              "the relay %llu before, %llu after\n",
              audio.c_str(), ms(answer_to_frame).c_str(), ms(answered - viewer.started_us).c_str(),
              ms(relay.last_keyframe_us.load() - answered).c_str(), ms(since_keyframe).c_str(),
              (unsigned long long)keyframes_before, (unsigned long long)relay.keyframes.load());
  ::testing::Test::RecordProperty("answer_to_first_frame_ms", int(answer_to_frame / 1000));
  // Broken keyframe-on-join would make this >= 2 s (the next natural
  // keyframe is >= 8.5 s away, see above).
  EXPECT_LT(answer_to_frame, bound_ms * 1000) << "first frame " << ms(answer_to_frame) << " after the answer";
  EXPECT_GT(relay.keyframes.load(), keyframes_before) << "the join produced no keyframe";
}

// Audio in 20 ms buffers at 48 kHz (what browsers and OBS send: one Opus
// packet every 20 ms). Target 500 ms (issue 3); measured ~130 ms here; the
// bound is 1500 ms for a loaded 2-core CI box.
TEST(WhipToWhep, LateWhepsrcViewerGetsFirstFrameWithin500ms) {
  if (!have_our_elements()) FAIL() << "the four elements are not all built";
  late_join("audiotestsrc is-live=true wave=sine samplesperbuffer=960 ! audio/x-raw,rate=48000", 1500);
}

// audiotestsrc's default 1024-sample buffers at 44.1 kHz make whipsink send
// Opus at a jittery 23.2 ms cadence. whipserversrc used to NACK such merely
// late audio packets in bursts that held the AVPF early-RTCP slot, and its
// 5 s RTCP interval then delayed the joining viewer's keyframe request by up
// to 900 ms; now audio has no NACK and RTCP runs every 500 ms at least.
TEST(WhipToWhep, LateJoinWithin500msWithJitteryPublisherAudio) {
  if (!have_our_elements()) FAIL() << "the four elements are not all built";
  late_join("audiotestsrc is-live=true wave=sine", 500);
}

// Viewers join and leave every few hundred ms while a steady viewer plays;
// its largest gap in video is bounded whatever the cause, and so is what
// the relay's fan-out adds to a gap that already arrives at its input.
TEST(WhipToWhep, ChurnOfWhepsrcViewersDoesNotStallOthers) {
  if (!have_our_elements()) FAIL() << "the four elements are not all built";
  Relay relay;
  std::unique_ptr<Launch> pub;
  start_chain(relay, pub, raw_publisher(relay.whip_url(), "vp8", 320, 240, 30));
  if (::testing::Test::HasFatalFailure()) return;
  Viewer steady(relay.whep_url());
  ASSERT_TRUE(steady.play());
  ASSERT_TRUE(test::wait_for([&] { return steady.video.count() >= 30 || steady.bus->has_error(); }, 15000))
      << steady.errors();

  ASSERT_TRUE(steady.watch_receive_path());
  steady.video.reset_gap();
  steady.audio.reset_gap();
  steady.jitterbuffered.reset_gap();
  steady.hold.reset();
  relay.relayed_video.reset_gap();
  relay.source_video.reset_gap();
  const guint64 before = steady.video.count();
  const gint64 churn_start = g_get_monotonic_time();
  // What happened when, relative to churn_start, to locate a stall.
  std::string timeline;
  auto mark = [&](const std::string &what, gint64 at_us) {
    timeline += "  " + ms(at_us - churn_start) + " " + what + "\n";
  };
  std::vector<std::unique_ptr<Viewer>> churners;
  int joined = 0, decoded = 0, left = 0;
  // 10 s of churn, and at least 5 joins (a sanitizer build joins slower;
  // bounded at 30 s).
  auto churning = [&] {
    const gint64 t = g_get_monotonic_time() - churn_start;
    return t < 10 * G_USEC_PER_SEC || (joined < 5 && t < 30 * G_USEC_PER_SEC);
  };
  while (churning()) {
    churners.push_back(std::make_unique<Viewer>(relay.whep_url()));
    Viewer &v = *churners.back();
    ASSERT_TRUE(v.play());
    joined++;
    mark("churner " + std::to_string(joined) + " started", v.started_us);
    // Each churner plays until it decodes a frame (bounded), then the oldest
    // of them leaves (NULL -> DELETE) once three are up.
    if (test::wait_for([&] { return v.video.count() > 0 || v.bus->has_error(); }, 4000) && v.video.count() > 0)
      decoded++;
    mark("churner " + std::to_string(joined) + " first frame", v.video.first_us());
    EXPECT_EQ(v.errors(), "") << "churner " << joined;
    if (churners.size() >= 3) {
      const gint64 t = g_get_monotonic_time();
      churners.erase(churners.begin());
      left++;
      mark("oldest churner left (NULL took " + ms(g_get_monotonic_time() - t) + ")", t);
    }
  }
  // Let a stall in progress end (bounded) so that both gaps are complete,
  // not cut at different instants.
  const gint64 churn_end = g_get_monotonic_time();
  test::wait_for([&] { return steady.video.last_us() > churn_end && relay.relayed_video.last_us() > churn_end; },
                 3000);
  const gint64 gap = steady.video.max_gap_us();
  const gint64 audio_gap = steady.audio.max_gap_us();
  const gint64 relay_gap = relay.relayed_video.max_gap_us();
  const gint64 source_gap = relay.source_video.max_gap_us();
  const gint64 arrival_gap = steady.hold.max_arrival_gap_us();
  const guint64 frames = steady.video.count() - before;
  const gint64 churn_us = g_get_monotonic_time() - churn_start;
  churners.clear();
  std::printf("churn: %d viewers joined (%d decoded), %d left in %s; steady viewer: %llu frames, "
              "largest video gap %s (ended at %s), largest audio gap %s (ended at %s); largest gap "
              "entering whepserversink %s (ended at %s), leaving whipserversrc %s\n",
              joined, decoded, left, ms(churn_us).c_str(), (unsigned long long)frames, ms(gap).c_str(),
              ms(steady.video.max_gap_end_us() - churn_start).c_str(), ms(audio_gap).c_str(),
              ms(steady.audio.max_gap_end_us() - churn_start).c_str(), ms(relay_gap).c_str(),
              ms(relay.relayed_video.max_gap_end_us() - churn_start).c_str(), ms(source_gap).c_str());
  if (gap >= 200 * 1000) {
    const std::string url = steady.resource_url();
    gobj::Unique<GstStructure> sent;
    g_signal_emit_by_name(relay.out, "get-viewer-stats", url.substr(url.rfind('/') + 1).c_str(),
                          static_cast<GstStructure **>(gobj::out(sent)));
    g_autofree gchar *sent_text = sent ? gst_structure_to_string(sent.get()) : nullptr;
    std::printf("churn timeline:\n%ssteady viewer's largest gap in video packet arrivals %s (ended at %s), "
                "leaving its jitterbuffer %s (ended at %s); longest hold of a packet in between %s (ended at "
                "%s)\n"
                "relay's stats for it: %s\nits inbound-rtp stats:\n%s",
                timeline.c_str(), ms(arrival_gap).c_str(),
                ms(steady.hold.max_arrival_gap_end_us() - churn_start).c_str(),
                ms(steady.jitterbuffered.max_gap_us()).c_str(),
                ms(steady.jitterbuffered.max_gap_end_us() - churn_start).c_str(),
                ms(steady.hold.max_hold_us()).c_str(), ms(steady.hold.max_hold_end_us() - churn_start).c_str(),
                gobj::str_or(sent_text).c_str(),
                steady.inbound_stats().c_str());
  }
  ::testing::Test::RecordProperty("steady_max_video_gap_ms", int(gap / 1000));
  EXPECT_EQ(steady.errors(), "");
  EXPECT_GE(joined, 5);
  EXPECT_EQ(decoded, joined);
  // Target 200 ms (issue 3); 400 ms allows for a loaded 2-core CI box.
  // Measured 80-110 ms under ASan, at most 175 ms with the test confined to
  // one core. Two causes of 300-1500 ms stalls here were found with the
  // diagnostics above and fixed (2026-11-30): the receive jitterbuffers of
  // whipserversrc and whepsrc declared late packets lost and then dropped
  // them (nack_only_gaps), and webrtcbin's clocksync made the fan-out's
  // sender threads wait on the clock (viewer-session.cpp).
  EXPECT_LT(gap, 400 * 1000) << "steady viewer stalled " << ms(gap) << "; whepserversink's input stalled "
                             << ms(relay_gap) << ", whipserversrc's output " << ms(source_gap);
  // What the fan-out itself adds to a stall coming from upstream.
  EXPECT_LT(gap - relay_gap, 200 * 1000) << "the fan-out added " << ms(gap - relay_gap) << " to the largest gap";
  // At least half the publisher's 30 fps reaches the steady viewer; under
  // ASan+UBSan (WHIPWHEP_SANITIZER, tests/meson.build), where the publisher,
  // the relay and the peers share two slowed cores, a quarter (measured:
  // 28 fps, or 16-20 fps confined to one core).
  const guint64 min_frames = churn_us / 1000 / 33 / (g_getenv("WHIPWHEP_SANITIZER") ? 4 : 2);
  EXPECT_GE(frames, min_frames) << "steady viewer lost frames during the churn";
  EXPECT_FALSE(relay.bus->has_error()) << relay.bus->error_text();
}

TEST(WhipToWhep, WhipsinkPublisherRestartResumesViewers) {
  if (!have_our_elements()) FAIL() << "the four elements are not all built";
  Relay relay;
  std::unique_ptr<Launch> pub;
  const std::string desc = raw_publisher(relay.whip_url(), "vp8", 320, 240, 30);
  start_chain(relay, pub, desc);
  if (HasFatalFailure()) return;
  Viewer viewer(relay.whep_url());
  ASSERT_TRUE(viewer.play());
  ASSERT_TRUE(test::wait_for([&] { return viewer.video.count() >= 30 || viewer.bus->has_error(); }, 15000))
      << viewer.errors();
  const std::string session = viewer.resource_url();
  ASSERT_FALSE(session.empty());

  // The publisher leaves: NULL makes whipsink DELETE its session.
  pub.reset();
  ASSERT_TRUE(test::wait_for([&] { return !relay.publishing(); }, 10000)) << "still publishing after DELETE";
  const guint64 video_then = viewer.video.count(), audio_then = viewer.audio.count();
  const gint64 left_at = g_get_monotonic_time();

  // A new whipsink publishes to the same whipserversrc.
  auto second = std::make_unique<Launch>(desc);
  ASSERT_TRUE(second->play());
  ASSERT_TRUE(test::wait_for([&] { return relay.publishing() || second->bus->has_error(); }, 15000))
      << second->errors();
  const gint64 republished = g_get_monotonic_time();
  EXPECT_TRUE(test::wait_for(
      [&] {
        return (viewer.video.count() >= video_then + 30 && viewer.audio.count() >= audio_then + 50) ||
               viewer.bus->has_error();
      },
      15000))
      << "viewer after restart: " << viewer.video.count() - video_then << " frames, "
      << viewer.audio.count() - audio_then << " audio buffers; " << viewer.errors();
  std::printf("publisher restart: gap %s from leaving to republishing; viewer resumed with %llu frames, "
              "%llu audio buffers since\n",
              ms(republished - left_at).c_str(), (unsigned long long)(viewer.video.count() - video_then),
              (unsigned long long)(viewer.audio.count() - audio_then));
  EXPECT_EQ(viewer.errors(), "");
  EXPECT_EQ(viewer.resource_url(), session) << "the viewer reconnected";
  EXPECT_EQ(relay.viewer_count(), 1u);
  EXPECT_FALSE(second->bus->has_error()) << second->errors();
  EXPECT_FALSE(relay.bus->has_error()) << relay.bus->error_text();
}

// The WHIP server answers with a real SDP (ICE credentials, DTLS fingerprint,
// host candidates on 127.0.0.1) from a webrtcbin that is stopped before the
// answer is sent: whipsink's checks reach closed ports, and it must post an
// element error within its timeout instead of waiting forever.
TEST(WhipToWhep, WhipsinkReportsIceFailure) {
  if (!test::factory_is_ours("whipsink")) FAIL() << "whipsink not built";
  struct Held {
    std::mutex lock;
    bool have = false;
    test::Reply reply;
    test::TestHttpServer::Respond respond;
  } held;
  auto peer = std::make_unique<test::ReceivingPeer>();
  test::ReceivingPeer *peer_raw = peer.get();
  test::TestHttpServer server([&](const test::SeenRequest &q, test::TestHttpServer::Respond r) {
    if (q.method != "POST") return r(test::Reply{200, "", "", {}});
    peer_raw->handle(q, [&held, r](test::Reply reply) {
      std::lock_guard<std::mutex> l(held.lock);
      held.reply = std::move(reply);
      held.respond = r;
      held.have = true;
    });
  });
  ASSERT_NE(server.port(), 0u);
  constexpr guint kTimeout = 4;
  Launch pub("videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=15/1 ! "
             "whipsink name=ws ice-addresses=127.0.0.1 timeout=" + std::to_string(kTimeout) +
             " whip-endpoint=" + server.url("/whip"));
  ASSERT_TRUE(pub.play());
  ASSERT_TRUE(test::wait_for(
      [&] {
        std::lock_guard<std::mutex> l(held.lock);
        return held.have || pub.bus->has_error();
      },
      10000))
      << pub.errors();
  ASSERT_FALSE(pub.bus->has_error()) << pub.errors();
  // The answering webrtcbin goes away, then its answer is delivered.
  peer.reset();
  test::Reply reply;
  test::TestHttpServer::Respond respond;
  {
    std::lock_guard<std::mutex> l(held.lock);
    reply = held.reply;
    respond = held.respond;
  }
  ASSERT_EQ(reply.status, 201u) << reply.body;
  ASSERT_NE(reply.body.find("a=candidate"), std::string::npos) << reply.body;
  const gint64 answered = g_get_monotonic_time();
  respond(reply);
  ASSERT_TRUE(test::wait_for([&] { return pub.bus->has_error(); }, (kTimeout + 6) * 1000))
      << "no element error " << (kTimeout + 6) << " s after an answer nobody is behind";
  const gint64 took = g_get_monotonic_time() - answered;
  std::printf("ICE failure reported %s after the answer: %s\n", ms(took).c_str(), pub.errors().c_str());
  EXPECT_LT(took, (kTimeout + 2) * G_USEC_PER_SEC);
  const std::string text = pub.errors();
  EXPECT_TRUE(text.find("ICE") != std::string::npos || text.find("DTLS") != std::string::npos) << text;
  pub.stop();
  EXPECT_EQ(server.count("DELETE"), 1) << "the failed session was not deleted";
}

}  // namespace
