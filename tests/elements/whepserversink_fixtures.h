// Fixtures of the whepserversink element tests: a live VP8 + Opus source
// into whepserversink and test-driven recvonly webrtcbin viewers, all on
// 127.0.0.1; viewers decode (vp8dec/opusdec) and count frames on a probe.
#pragma once

#include <gst/gst.h>
#include <gst/video/video.h>
#include <gst/webrtc/webrtc.h>
#include <gtest/gtest.h>
#include <libsoup/soup.h>

#include <dirent.h>
#include <nice/agent.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <utility>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "http-types.h"
#include "ice.h"
#include "shared-ice.h"
#include "webrtc-negotiation.h"

using namespace whipwhep;

namespace {

inline guint thread_count() {
  guint n = 0;
  if (DIR *d = opendir("/proc/self/task")) {
    while (struct dirent *e = readdir(d))
      if (e->d_name[0] != '.') n++;
    closedir(d);
  }
  return n;
}

// Threads of this process whose name starts with `prefix`.
inline guint threads_named(const char *prefix) {
  guint n = 0;
  if (DIR *d = opendir("/proc/self/task")) {
    while (struct dirent *e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      gchar *comm = nullptr;
      gobj::Unique<gchar> path(g_strdup_printf("/proc/self/task/%s/comm", e->d_name));
      if (g_file_get_contents(path.get(), &comm, nullptr, nullptr) && g_str_has_prefix(comm, prefix))
        n++;
      g_free(comm);
    }
    closedir(d);
  }
  return n;
}

// The process's thread count once it has not changed for `quiet_us`
// (threads of stopped elements go back to GStreamer's pool and leave it
// after a moment); waits at most timeout_ms.
inline guint steady_thread_count(gint64 quiet_us, guint timeout_ms) {
  guint last = thread_count();
  gint64 changed_at = g_get_monotonic_time();
  test::wait_for([&] {
    const guint now = thread_count();
    if (now != last) {
      last = now;
      changed_at = g_get_monotonic_time();
    }
    return g_get_monotonic_time() - changed_at >= quiet_us;
  }, timeout_ms);
  return last;
}

// Decoded buffers through a pad: count, first time, largest gap (µs).
struct FrameClock {
  std::mutex m;
  guint64 count = 0;
  gint64 first = 0, last = 0, max_gap = 0, gap_from = 0;
  void tick() {
    std::lock_guard<std::mutex> g(m);
    gint64 now = g_get_monotonic_time();
    if (count == 0) first = now;
    if (count > 0 && gap_from && last >= gap_from) max_gap = std::max(max_gap, now - last);
    last = now;
    count++;
  }
  guint64 n() {
    std::lock_guard<std::mutex> g(m);
    return count;
  }
  gint64 first_time() {
    std::lock_guard<std::mutex> g(m);
    return first;
  }
  // Start measuring gaps from now on.
  void measure_gaps() {
    std::lock_guard<std::mutex> g(m);
    gap_from = g_get_monotonic_time();
    max_gap = 0;
  }
  gint64 largest_gap() {
    std::lock_guard<std::mutex> g(m);
    return std::max(max_gap, last >= gap_from ? g_get_monotonic_time() - last : 0);
  }
};

// The publisher side: a live VP8 + Opus stream into whepserversink.
class Source {
 public:
  explicit Source(int keyframe_dist = 30, bool audio = true, int fps = 30, const char *extra = "") {
    std::string desc = std::string("whepserversink name=sink ice-addresses=127.0.0.1 ") + extra +
                       " videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,"
                       "framerate=" + std::to_string(fps) + "/1 ! vp8enc deadline=1 cpu-used=8 "
                       "keyframe-max-dist=" + std::to_string(keyframe_dist) + " ! sink.video_0 ";
    if (audio) desc += "audiotestsrc is-live=true wave=ticks ! opusenc ! sink.audio_0";
    gobj::Unique<GError> err;
    pipeline = gobj::sink(gst_parse_launch(desc.c_str(), gobj::out(err)));
    EXPECT_TRUE(pipeline) << (err ? err->message : "");
    sink = gobj::adopt(gst_bin_get_by_name(GST_BIN(pipeline.get()), "sink"));
    // Messages left queued on the bus would keep their sources (a viewer's
    // nicesink, and through it its ICE agent) alive: take them as they come.
    if (pipeline) bus = std::make_unique<test::BusWatcher>(pipeline.get());
  }
  ~Source() {
    if (pipeline) gst_element_set_state(pipeline.get(), GST_STATE_NULL);
  }
  bool play_and_wait_caps(bool audio = true) {
    gst_element_set_state(pipeline.get(), GST_STATE_PLAYING);
    return test::wait_for(
        [&] { return has_caps("video_0") && (!audio || has_caps("audio_0")); }, 10000);
  }
  bool has_caps(const char *pad) {
    gobj::Ref<GstPad> p = gobj::adopt(gst_element_get_static_pad(sink.get(), pad));
    return p && gst_pad_has_current_caps(p.get());
  }
  guint viewer_count() {
    guint n = 0;
    g_object_get(sink.get(), "viewer-count", &n, nullptr);
    return n;
  }
  guint webrtcbins() {
    guint n = 0;
    GstIterator *it = gst_bin_iterate_elements(GST_BIN(sink.get()));
    GValue item = G_VALUE_INIT;
    while (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
      GstElementFactory *f = gst_element_get_factory(GST_ELEMENT(g_value_get_object(&item)));
      if (f && g_str_equal(GST_OBJECT_NAME(f), "webrtcbin")) n++;
      g_value_reset(&item);
    }
    g_value_unset(&item);
    gst_iterator_free(it);
    return n;
  }
  gobj::Ref<GstElement> pipeline, sink;
  std::unique_ptr<test::BusWatcher> bus;
};

inline HttpResponse request(GstElement *sink, const std::string &method, const std::string &session,
                     const std::string &body, const std::string &type = "application/sdp") {
  HttpRequest req;
  req.method = method;
  req.session = session;
  req.content_type = type;
  if (!body.empty()) req.body = gobj::adopt(g_bytes_new(body.data(), body.size()));
  // The callback owns what it writes: if the wait times out (a slow
  // sanitizer run), a late answer must not write into this dead frame.
  auto out = std::make_shared<std::shared_ptr<HttpResponse>>();
  submit_request(sink, req, nullptr,
                 [out](HttpResponse r) { *out = std::make_shared<HttpResponse>(std::move(r)); });
  EXPECT_TRUE(test::wait_for([&] { return *out != nullptr; }, 20000));
  return *out ? **out : HttpResponse::text(0, "no response");
}

// A recvonly viewer: webrtcbin -> depay -> decoder -> fakesink (counted).
class Viewer {
 public:
  struct Options {
    int video_pt = 96, audio_pt = 111;
    const char *video_codec = "VP8";
    bool audio = true;
    bool nack = true;
  };
  Viewer() : Viewer(Options()) {}
  explicit Viewer(Options o) : opts(o) {
    pipeline = gobj::sink(gst_pipeline_new(nullptr));
    webrtc = gobj::sink(gst_element_factory_make("webrtcbin", nullptr));
    g_object_set(webrtc.get(), "bundle-policy", GST_WEBRTC_BUNDLE_POLICY_MAX_BUNDLE, "latency",
                 150u, nullptr);
    IceSettings ice;
    ice.local_addresses = {"127.0.0.1"};
    configure_ice(webrtc.get(), ice);
    // rtpjitterbuffer's default (rtx-next-seqnum) is kept here, unlike in
    // whepsrc (nack_only_gaps): these viewers also NACK packets that are
    // merely late, ~5 % of them on this loopback, and the relay resends
    // those. Turning it off delays each viewer's first SRTCP, and so its
    // webrtcbin's release, by about a second, and that longer window made
    // two old races show under ASan (a video stall of one of ten viewers;
    // RTPSession's stats read during churn): see the session-14 notes.
    gst_bin_add(GST_BIN(pipeline.get()), gobj::ref(webrtc.get()).release());
    std::string vcaps = std::string("application/x-rtp,media=video,clock-rate=90000,encoding-name=") +
                        opts.video_codec + ",payload=" + std::to_string(opts.video_pt) +
                        ",rtcp-fb-nack=(boolean)true,rtcp-fb-nack-pli=(boolean)true";
    if (g_str_equal(opts.video_codec, "H264"))
      vcaps += ",packetization-mode=(string)1,profile-level-id=(string)42e01f";
    add_transceiver(vcaps);
    if (opts.audio)
      add_transceiver("application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,"
                      "encoding-params=(string)2,payload=" + std::to_string(opts.audio_pt));
    g_signal_connect(webrtc.get(), "pad-added", G_CALLBACK(&Viewer::on_pad_added), this);
    gst_element_set_state(pipeline.get(), GST_STATE_PLAYING);
  }
  ~Viewer() {
    g_signal_handlers_disconnect_by_data(webrtc.get(), this);
    gst_element_set_state(pipeline.get(), GST_STATE_NULL);
  }
  void add_transceiver(const std::string &caps_str) {
    gobj::Ref<GstCaps> caps = gobj::adopt(gst_caps_from_string(caps_str.c_str()));
    GstWebRTCRTPTransceiver *t = nullptr;
    g_signal_emit_by_name(webrtc.get(), "add-transceiver",
                          GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_RECVONLY, caps.get(), &t);
    if (t) {
      g_object_set(t, "do-nack", opts.nack, nullptr);
      gst_object_unref(t);
    }
  }
  // Promise callbacks run on webrtcbin's thread, possibly after a wait here
  // timed out: they write into state they share, never into this frame.
  struct Outcome {
    std::mutex m;
    bool done = false, ok = false;
    std::string text;
  };
  static bool wait_outcome(const std::shared_ptr<Outcome> &o) {
    return test::wait_for([&] { std::lock_guard<std::mutex> l(o->m); return o->done; }, 10000);
  }
  static std::function<void(bool, std::string)> fill(const std::shared_ptr<Outcome> &o) {
    return [o](bool ok, std::string text) {
      std::lock_guard<std::mutex> l(o->m);
      o->ok = ok;
      o->text = std::move(text);
      o->done = true;
    };
  }
  std::string offer() {
    auto o = std::make_shared<Outcome>();
    make_offer(webrtc.get(), fill(o));
    EXPECT_TRUE(wait_outcome(o));
    std::lock_guard<std::mutex> l(o->m);
    EXPECT_TRUE(o->ok) << o->text;
    return o->ok ? o->text : std::string();
  }
  bool answer(const std::string &sdp) {
    std::string why;
    GstSDPMessage *msg = parse_sdp(sdp, &why);
    if (!msg) return false;
    auto o = std::make_shared<Outcome>();
    apply_answer(webrtc.get(), msg, fill(o));
    EXPECT_TRUE(wait_outcome(o));
    std::lock_guard<std::mutex> l(o->m);
    return o->done && o->ok;
  }
  // Offer, POST through handle-request, apply the answer. Returns the session.
  std::string join(GstElement *sink) {
    HttpResponse r = request(sink, "POST", "", offer());
    EXPECT_EQ(r.status, 201u) << r.body;
    answered_at = g_get_monotonic_time();
    if (r.status != 201) return {};
    EXPECT_TRUE(answer(r.body));
    session = r.session;
    return r.session;
  }
  static void on_pad_added(GstElement *, GstPad *pad, gpointer data) {
    auto *self = static_cast<Viewer *>(data);
    if (GST_PAD_DIRECTION(pad) != GST_PAD_SRC) return;
    // Which m-line: the pad's transceiver knows its kind and codec.
    gobj::Ref<GstWebRTCRTPTransceiver> trans;
    g_object_get(pad, "transceiver", trans.out(), nullptr);
    GstWebRTCKind kind = GST_WEBRTC_KIND_UNKNOWN;
    if (trans) g_object_get(trans.get(), "kind", &kind, nullptr);
    const bool video = kind == GST_WEBRTC_KIND_VIDEO;
    std::string desc = video ? (g_str_equal(self->opts.video_codec, "VP8")
                                    ? "rtpvp8depay ! vp8dec ! fakesink"
                                    : "rtph264depay ! avdec_h264 ! fakesink")
                             : "rtpopusdepay ! opusdec ! fakesink";
    GstElement *bin = gst_parse_bin_from_description(desc.c_str(), TRUE, nullptr);
    gst_bin_add(GST_BIN(self->pipeline.get()), bin);
    gst_element_sync_state_with_parent(bin);
    gobj::Ref<GstPad> sinkpad = gobj::adopt(gst_element_get_static_pad(bin, "sink"));
    gst_pad_link(pad, sinkpad.get());
    // The decoded side: the fakesink inside the bin.
    GstIterator *it = gst_bin_iterate_sinks(GST_BIN(bin));
    GValue item = G_VALUE_INIT;
    if (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
      gobj::Ref<GstPad> p = gobj::adopt(
          gst_element_get_static_pad(GST_ELEMENT(g_value_get_object(&item)), "sink"));
      gst_pad_add_probe(
          p.get(), GST_PAD_PROBE_TYPE_BUFFER,
          +[](GstPad *, GstPadProbeInfo *, gpointer clock) -> GstPadProbeReturn {
            static_cast<FrameClock *>(clock)->tick();
            return GST_PAD_PROBE_OK;
          },
          video ? &self->video : &self->audio, nullptr);
      g_value_unset(&item);
    }
    gst_iterator_free(it);
  }

  Options opts;
  gobj::Ref<GstElement> pipeline, webrtc;
  FrameClock video, audio;
  std::string session;
  gint64 answered_at = 0;
};

// n viewers joined to `sink`; empty (and a test failure) if one could not.
inline std::vector<std::unique_ptr<Viewer>> join_viewers(GstElement *sink, int n,
                                                  const Viewer::Options &o = Viewer::Options()) {
  std::vector<std::unique_ptr<Viewer>> vs;
  for (int i = 0; i < n; i++) {
    vs.push_back(std::make_unique<Viewer>(o));
    if (vs.back()->join(sink).empty()) {
      ADD_FAILURE() << "viewer " << i << " could not join";
      return {};
    }
  }
  return vs;
}

inline bool all_decode(std::vector<std::unique_ptr<Viewer>> &vs, guint64 video, guint64 audio,
                guint timeout_ms) {
  return test::wait_for(
      [&] {
        for (auto &v : vs)
          if (v->video.n() < video || v->audio.n() < audio) return false;
        return true;
      },
      timeout_ms);
}

// n viewers of a playing `src`, each having decoded 10 video and 10 audio
// frames; empty (and a test failure) otherwise.
inline std::vector<std::unique_ptr<Viewer>> decoding_viewers(Source &src, int n, bool audio = true) {
  if (!src.play_and_wait_caps(audio)) {
    ADD_FAILURE() << "the source did not start";
    return {};
  }
  Viewer::Options o;
  o.audio = audio;
  auto vs = join_viewers(src.sink.get(), n, o);
  if (vs.size() != size_t(n) || !all_decode(vs, 10, audio ? 10 : 0, 30000)) {
    ADD_FAILURE() << "the viewers did not decode";
    return {};
  }
  return vs;
}


inline std::string replace_all(std::string s, const std::string &from, const std::string &to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
    s.replace(p, from.size(), to);
  return s;
}

inline gobj::Unique<GstStructure> viewer_stats(GstElement *sink, const std::string &session) {
  GstStructure *s = nullptr;
  g_signal_emit_by_name(sink, "get-viewer-stats", session.c_str(), &s);
  return gobj::Unique<GstStructure>(s);
}

// On the direct path the SRs leave through it too (SRTCP protected there,
// not by srtpenc). The proof the viewer decrypted them: its rtpsession
// takes a sender report newer than the one it had when this path had
// already sent SRTCP (srtpenc sends nothing once this path has).
inline guint64 viewer_sr_ntptime(GstElement *viewer_webrtcbin) {
  gobj::Ref<GObject> session = gobj::adopt(bundled_rtp_session(viewer_webrtcbin));
  if (!session) return 0;
  gobj::Unique<GstStructure> st;
  g_object_get(session.get(), "stats", static_cast<GstStructure **>(gobj::out(st)), nullptr);
  const GValue *arr = st ? gst_structure_get_value(st.get(), "source-stats") : nullptr;
  guint64 newest = 0;
  G_GNUC_BEGIN_IGNORE_DEPRECATIONS
  auto *sources = arr ? static_cast<GValueArray *>(g_value_get_boxed(arr)) : nullptr;
  for (guint i = 0; sources && i < sources->n_values; i++) {
    const GstStructure *src = gst_value_get_structure(g_value_array_get_nth(sources, i));
    gboolean internal = FALSE, have_sr = FALSE;
    guint64 ntp = 0;
    gst_structure_get_boolean(src, "internal", &internal);
    gst_structure_get_boolean(src, "have-sr", &have_sr);
    if (!internal && have_sr && gst_structure_get_uint64(src, "sr-ntptime", &ntp))
      newest = std::max(newest, ntp);
  }
  G_GNUC_END_IGNORE_DEPRECATIONS
  return newest;
}

inline ::testing::AssertionResult srs_taken(GstElement *sink,
                                     const std::vector<std::unique_ptr<Viewer>> &viewers) {
  auto rtcp_sent = [&](const Viewer &v) {
    guint64 n = 0;
    if (auto st = viewer_stats(sink, v.session)) gst_structure_get_uint64(st.get(), "rtcp-sent", &n);
    return n;
  };
  for (auto &v : viewers)
    if (!test::wait_for([&] { return rtcp_sent(*v) >= 1; }, 10000))
      return ::testing::AssertionFailure() << "no SRTCP sent on the direct path";
  std::vector<guint64> before;
  for (auto &v : viewers) before.push_back(viewer_sr_ntptime(v->webrtc.get()));
  const bool newer = test::wait_for([&] {
    for (size_t i = 0; i < viewers.size(); i++)
      if (viewer_sr_ntptime(viewers[i]->webrtc.get()) <= before[i]) return false;
    return true;
  }, 10000);
  if (newer) return ::testing::AssertionSuccess();
  auto failure = ::testing::AssertionFailure();
  for (size_t i = 0; i < viewers.size(); i++)
    failure << "viewer " << i << ": rtcp-sent " << rtcp_sent(*viewers[i]) << ", newest SR "
            << viewer_sr_ntptime(viewers[i]->webrtc.get()) << " (was " << before[i] << "); ";
  return failure;
}


}  // namespace
