// whipserversrc: WHIP server side. Publishers here are plain webrtcbin
// pipelines driven by the test (not whipsink), talking to the element either
// through handle-request (embedded) or through its own HTTP listener.
// Everything stays on 127.0.0.1.
#include <gst/video/video.h>
#include <gst/webrtc/webrtc.h>
#include <gtest/gtest.h>
#include <libsoup/soup.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "harness.h"
#include "http-types.h"
#include "ice.h"
#include "webrtc-negotiation.h"

using namespace whipwhep;

namespace {

constexpr guint kLongWait = 20000;

bool have(const char *factory) {
  gobj::Ref<GstElementFactory> f = gobj::adopt(gst_element_factory_find(factory));
  return static_cast<bool>(f);
}

std::string h264_encoder(guint gop) {
  if (have("x264enc"))
    return "x264enc tune=zerolatency speed-preset=ultrafast bitrate=500 key-int-max=" +
           std::to_string(gop);
  return "openh264enc complexity=low bitrate=500000 gop-size=" + std::to_string(gop);
}

// A WHIP publisher that is not whipsink: webrtcbin sendonly fed by encoders.
struct Publisher {
  gobj::Ref<GstElement> pipeline;
  gobj::Ref<GstElement> webrtcbin;
  std::mutex lock;
  std::string offer;
  std::string error;
  std::atomic<bool> offer_done{false};
  std::atomic<bool> answer_applied{false};

  // video: "VP8" or "H264"; pt numbers chosen by the test.
  bool build(const std::string &video, int video_pt, bool audio, int audio_pt, guint gop = 30,
             bool audio_first = false) {
    std::string v = "videotestsrc is-live=true pattern=ball ! "
                    "video/x-raw,width=320,height=240,framerate=30/1 ! ";
    if (video == "VP8")
      v += "vp8enc deadline=1 cpu-used=16 keyframe-max-dist=" + std::to_string(gop) +
           " target-bitrate=400000 ! rtpvp8pay pt=" + std::to_string(video_pt);
    else
      v += h264_encoder(gop) + " ! video/x-h264,profile=constrained-baseline ! "
           "rtph264pay config-interval=-1 aggregate-mode=zero-latency pt=" +
           std::to_string(video_pt);
    v += " ! wb. ";
    std::string a = audio ? "audiotestsrc is-live=true wave=sine ! opusenc ! rtpopuspay pt=" +
                                std::to_string(audio_pt) + " ! wb. "
                          : "";
    std::string desc = "webrtcbin name=wb bundle-policy=max-bundle " +
                       (audio_first ? a + v : v + a);
    gobj::Unique<GError> err;
    pipeline = gobj::sink(gst_parse_launch(desc.c_str(), gobj::out(err)));
    if (!pipeline) {
      error = err ? err->message : "parse failed";
      return false;
    }
    webrtcbin = gobj::adopt(gst_bin_get_by_name(GST_BIN(pipeline.get()), "wb"));
    IceSettings ice;
    ice.local_addresses = {"127.0.0.1"};
    configure_ice(webrtcbin.get(), ice);
    GArray *arr = nullptr;
    g_signal_emit_by_name(webrtcbin.get(), "get-transceivers", &arr);
    for (guint i = 0; arr && i < arr->len; i++)
      g_object_set(g_array_index(arr, GstWebRTCRTPTransceiver *, i), "direction",
                   GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDONLY, "do-nack", TRUE, nullptr);
    if (arr) g_array_unref(arr);
    return gst_element_set_state(pipeline.get(), GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE;
  }

  // Waits until caps reached webrtcbin, then makes the offer (after gathering).
  bool make_offer_now() {
    bool caps = test::wait_for(
        [this] {
          bool all = true;
          GstIterator *it = gst_element_iterate_sink_pads(webrtcbin.get());
          GValue v = G_VALUE_INIT;
          while (gst_iterator_next(it, &v) == GST_ITERATOR_OK) {
            GstPad *p = GST_PAD(g_value_get_object(&v));
            all = all && gst_pad_has_current_caps(p);
            g_value_reset(&v);
          }
          g_value_unset(&v);
          gst_iterator_free(it);
          return all;
        },
        10000);
    if (!caps) return false;
    make_offer(webrtcbin.get(), [this](bool ok, std::string text) {
      std::lock_guard<std::mutex> l(lock);
      if (ok) offer = text;
      else error = text;
      offer_done = true;
    });
    return test::wait_for([this] { return offer_done.load(); }, 10000) && !offer.empty();
  }

  void apply(const std::string &answer_sdp) {
    std::string why;
    GstSDPMessage *msg = parse_sdp(answer_sdp, &why);
    ASSERT_NE(msg, nullptr) << why;
    apply_answer(webrtcbin.get(), msg, [this](bool ok, std::string text) {
      if (!ok) {
        std::lock_guard<std::mutex> l(lock);
        error = text;
      }
      answer_applied = true;
    });
    ASSERT_TRUE(test::wait_for([this] { return answer_applied.load(); }, 5000));
    std::lock_guard<std::mutex> l(lock);
    ASSERT_TRUE(error.empty()) << error;
  }

  ~Publisher() {
    if (pipeline) gst_element_set_state(pipeline.get(), GST_STATE_NULL);
  }
};

// The receiving pipeline: whipserversrc, each src pad -> queue -> decodebin
// -> fakesink, with counters on the element's pads (encoded) and after the
// decoders (decoded).
struct Receiver {
  gobj::Ref<GstElement> pipeline;
  gobj::Ref<GstElement> src;
  std::unique_ptr<test::BusWatcher> bus;
  test::BufferCounter video_encoded, audio_encoded, video_decoded, audio_decoded;
  std::atomic<int> video_pads{0}, audio_pads{0};
  gobj::Ref<GstPad> video_pad;
  std::mutex lock;

  explicit Receiver(guint port = 0, const char *token = nullptr) {
    pipeline = gobj::sink(gst_pipeline_new(nullptr));
    src = gobj::sink(gst_element_factory_make("whipserversrc", nullptr));
    g_object_set(src.get(), "ice-addresses", "127.0.0.1", "port", port, nullptr);
    if (token) g_object_set(src.get(), "auth-token", token, nullptr);
    gst_bin_add(GST_BIN(pipeline.get()), src.get());
    bus = std::make_unique<test::BusWatcher>(pipeline.get());
    g_signal_connect(src.get(), "pad-added", G_CALLBACK(&Receiver::on_pad), this);
  }

  static void on_pad(GstElement *, GstPad *pad, gpointer data) {
    auto *self = static_cast<Receiver *>(data);
    const bool video = g_str_has_prefix(GST_PAD_NAME(pad), "video_");
    GstElement *queue = gst_element_factory_make("queue", nullptr);
    GstElement *dec = gst_element_factory_make("decodebin", nullptr);
    GstElement *sink = gst_element_factory_make("fakesink", nullptr);
    g_object_set(sink, "sync", FALSE, "async", FALSE, nullptr);
    gst_bin_add_many(GST_BIN(self->pipeline.get()), queue, dec, sink, nullptr);
    gst_element_link(queue, dec);
    g_object_set_data(G_OBJECT(dec), "sink", sink);
    g_signal_connect(dec, "pad-added", G_CALLBACK(+[](GstElement *dec, GstPad *p, gpointer d) {
                       auto *self = static_cast<Receiver *>(d);
                       auto *sink = static_cast<GstElement *>(g_object_get_data(G_OBJECT(dec), "sink"));
                       gobj::Ref<GstPad> sp = gobj::adopt(gst_element_get_static_pad(sink, "sink"));
                       if (gst_pad_is_linked(sp.get())) return;
                       gst_pad_link(p, sp.get());
                       gobj::Ref<GstCaps> caps = gobj::adopt(gst_pad_query_caps(p, nullptr));
                       const bool v = g_str_has_prefix(
                           gst_structure_get_name(gst_caps_get_structure(caps.get(), 0)), "video");
                       (v ? self->video_decoded : self->audio_decoded).attach(sp.get());
                     }),
                     self);
    gst_element_sync_state_with_parent(sink);
    gst_element_sync_state_with_parent(dec);
    gst_element_sync_state_with_parent(queue);
    gobj::Ref<GstPad> qs = gobj::adopt(gst_element_get_static_pad(queue, "sink"));
    gst_pad_link(pad, qs.get());
    if (video) {
      self->video_encoded.attach(pad);
      std::lock_guard<std::mutex> l(self->lock);
      self->video_pad = gobj::ref(pad);
      self->video_pads++;
    } else {
      self->audio_encoded.attach(pad);
      self->audio_pads++;
    }
  }

  void play() {
    ASSERT_NE(gst_element_set_state(pipeline.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  }
  ~Receiver() {
    if (pipeline) gst_element_set_state(pipeline.get(), GST_STATE_NULL);
  }
};

HttpResponse request(GstElement *element, const std::string &method, const std::string &ctype,
                     const std::string &body, const std::string &session = {},
                     const std::string &auth = {}) {
  HttpRequest req;
  req.method = method;
  req.content_type = ctype;
  req.session = session;
  req.authorization = auth;
  if (!body.empty()) req.body = gobj::adopt(g_bytes_new(body.data(), body.size()));
  // The callback owns what it writes: a response after the wait timed out
  // must not write into this dead frame.
  auto out = std::make_shared<std::shared_ptr<HttpResponse>>();
  submit_request(element, req, g_main_context_default(),
                 [out](HttpResponse r) { *out = std::make_shared<HttpResponse>(std::move(r)); });
  test::wait_for([&out] { return *out != nullptr; }, 20000);
  return *out ? **out : HttpResponse::text(0, "no response");
}

// Offer, POST through handle-request, answer: returns the session id.
std::string publish(Receiver &rx, Publisher &pub, const std::string &auth = {}) {
  if (!pub.make_offer_now()) {
    ADD_FAILURE() << "no offer: " << pub.error;
    return {};
  }
  HttpResponse r = request(rx.src.get(), "POST", "application/sdp", pub.offer, {}, auth);
  EXPECT_EQ(r.status, 201u) << r.body;
  if (r.status != 201) return {};
  EXPECT_EQ(r.content_type, "application/sdp");
  EXPECT_EQ(r.session.size(), 32u);
  EXPECT_FALSE(r.etag.empty());
  pub.apply(r.body);
  return r.session;
}

bool media_flows(Receiver &rx, guint64 video_from, guint64 audio_from, bool audio = true) {
  return test::wait_for(
      [&] {
        return rx.video_decoded.count() >= video_from + 60 &&
               (!audio || rx.audio_decoded.count() >= audio_from + 20);
      },
      kLongWait);
}

const char kAv1Only[] =
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 45\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n"
    "a=rtcp-mux\r\na=rtpmap:45 AV1/90000\r\na=ice-ufrag:abcd\r\n"
    "a=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\n"
    "a=fingerprint:sha-256 "
    "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99\r\n";

std::string replace_all(std::string s, const std::string &from, const std::string &to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
    s.replace(p, from.size(), to);
  return s;
}

}  // namespace

TEST(WhipServerSrc, FactoryIsOurs) { EXPECT_TRUE(test::factory_is_ours("whipserversrc")); }

TEST(WhipServerSrc, EmbeddedVp8AndOpusDecodeDownstream) {
  Receiver rx;
  rx.play();
  Publisher pub;
  ASSERT_TRUE(pub.build("VP8", 96, true, 111)) << pub.error;
  ASSERT_FALSE(publish(rx, pub).empty());
  EXPECT_TRUE(media_flows(rx, 0, 0)) << "video " << rx.video_decoded.count() << " audio "
                                     << rx.audio_decoded.count();
  gboolean publishing = FALSE;
  g_object_get(rx.src.get(), "publishing", &publishing, nullptr);
  EXPECT_TRUE(publishing);
  EXPECT_EQ(rx.video_pads.load(), 1);
  EXPECT_EQ(rx.audio_pads.load(), 1);
  EXPECT_FALSE(rx.bus->has_error()) << rx.bus->error_text();
}

TEST(WhipServerSrc, H264AtPayloadType102WithOpus) {
  if (!have("x264enc") && !have("openh264enc")) FAIL() << "no H.264 encoder";
  Receiver rx;
  rx.play();
  Publisher pub;
  ASSERT_TRUE(pub.build("H264", 102, true, 109)) << pub.error;
  ASSERT_FALSE(publish(rx, pub).empty());
  EXPECT_TRUE(media_flows(rx, 0, 0)) << "video " << rx.video_decoded.count() << " audio "
                                     << rx.audio_decoded.count();
  gobj::Ref<GstCaps> caps;
  {
    std::lock_guard<std::mutex> l(rx.lock);
    ASSERT_TRUE(rx.video_pad);
    caps = gobj::adopt(gst_pad_get_current_caps(rx.video_pad.get()));
  }
  ASSERT_TRUE(caps);
  const GstStructure *s = gst_caps_get_structure(caps.get(), 0);
  EXPECT_STREQ(gst_structure_get_name(s), "video/x-h264");
  EXPECT_STREQ(gst_structure_get_string(s, "stream-format"), "byte-stream");
  EXPECT_STREQ(gst_structure_get_string(s, "alignment"), "au");
}

namespace {

struct HttpResult {
  guint status = 0;
  std::string body, location, content_type, www_authenticate;
};

HttpResult http(const std::string &method, const std::string &url, const std::string &ctype,
                const std::string &body, const std::string &auth = {}) {
  gobj::Ref<SoupSession> session = gobj::adopt(soup_session_new_with_options("timeout", 10, nullptr));
  gobj::Ref<SoupMessage> msg = gobj::adopt(soup_message_new(method.c_str(), url.c_str()));
  HttpResult out;
  if (!msg) return out;
  if (!body.empty()) {
    gobj::Ref<GBytes> b = gobj::adopt(g_bytes_new(body.data(), body.size()));
    soup_message_set_request_body_from_bytes(msg.get(), ctype.c_str(), b.get());
  }
  SoupMessageHeaders *rh = soup_message_get_request_headers(msg.get());
  if (!auth.empty()) soup_message_headers_replace(rh, "Authorization", auth.c_str());
  gobj::Unique<GError> err;
  gobj::Ref<GBytes> resp =
      gobj::adopt(soup_session_send_and_read(session.get(), msg.get(), nullptr, gobj::out(err)));
  out.status = soup_message_get_status(msg.get());
  if (resp) {
    gsize n = 0;
    const char *d = static_cast<const char *>(g_bytes_get_data(resp.get(), &n));
    out.body.assign(d ? d : "", n);
  }
  SoupMessageHeaders *h = soup_message_get_response_headers(msg.get());
  out.location = gobj::str_or(soup_message_headers_get_one(h, "Location"));
  out.content_type = normalize_media_type(soup_message_headers_get_one(h, "Content-Type"));
  out.www_authenticate = gobj::str_or(soup_message_headers_get_one(h, "WWW-Authenticate"));
  return out;
}

}  // namespace

TEST(WhipServerSrc, StandaloneListenerPublishAndDelete) {
  const guint port = test::free_tcp_port();
  ASSERT_NE(port, 0u);
  Receiver rx(port);
  rx.play();
  guint bound = 0;
  g_object_get(rx.src.get(), "bound-port", &bound, nullptr);
  EXPECT_EQ(bound, port);
  const std::string endpoint = "http://127.0.0.1:" + std::to_string(port) + "/whip";

  Publisher pub;
  ASSERT_TRUE(pub.build("VP8", 96, true, 111)) << pub.error;
  ASSERT_TRUE(pub.make_offer_now()) << pub.error;
  HttpResult r = http("POST", endpoint, "application/sdp", pub.offer);
  ASSERT_EQ(r.status, 201u) << r.body;
  EXPECT_EQ(r.content_type, "application/sdp");
  ASSERT_TRUE(g_str_has_prefix(r.location.c_str(), "/whip/")) << r.location;
  EXPECT_EQ(r.location.size(), std::string("/whip/").size() + 32);
  pub.apply(r.body);
  EXPECT_TRUE(media_flows(rx, 0, 0)) << "video " << rx.video_decoded.count() << " audio "
                                     << rx.audio_decoded.count();

  const std::string session_url = "http://127.0.0.1:" + std::to_string(port) + r.location;
  EXPECT_EQ(http("DELETE", session_url, "", "").status, 200u);
  EXPECT_TRUE(test::wait_for(
      [&] {
        gboolean p = TRUE;
        g_object_get(rx.src.get(), "publishing", &p, nullptr);
        return !p;
      },
      5000));
  EXPECT_EQ(http("DELETE", session_url, "", "").status, 404u);
  EXPECT_FALSE(rx.bus->has_eos());
  EXPECT_FALSE(rx.bus->has_error()) << rx.bus->error_text();
}

TEST(WhipServerSrc, RejectsBadInputsWithExactStatusesThenAcceptsAPublisher) {
  const guint port = test::free_tcp_port();
  Receiver rx(port, "s3cret");
  rx.play();
  const std::string endpoint = "http://127.0.0.1:" + std::to_string(port) + "/whip";
  const std::string good = "Bearer s3cret";

  Publisher pub;
  ASSERT_TRUE(pub.build("VP8", 96, true, 111)) << pub.error;
  ASSERT_TRUE(pub.make_offer_now()) << pub.error;

  HttpResult r = http("POST", endpoint, "application/sdp", pub.offer);
  EXPECT_EQ(r.status, 401u) << r.body;
  EXPECT_EQ(r.www_authenticate, "Bearer");
  EXPECT_FALSE(r.body.empty());
  EXPECT_EQ(http("POST", endpoint, "application/sdp", pub.offer, "Bearer wrong").status, 401u);

  r = http("POST", endpoint, "text/plain", pub.offer, good);
  EXPECT_EQ(r.status, 415u) << r.body;
  EXPECT_EQ(r.content_type, "text/plain");
  EXPECT_FALSE(r.body.empty());

  r = http("POST", endpoint, "application/sdp", "this is not sdp", good);
  EXPECT_EQ(r.status, 400u) << r.body;
  EXPECT_FALSE(r.body.empty());

  r = http("POST", endpoint, "application/sdp", replace_all(pub.offer, "a=sendonly", "a=recvonly"),
           good);
  EXPECT_EQ(r.status, 422u) << r.body;
  EXPECT_NE(r.body.find("sendonly"), std::string::npos) << r.body;

  r = http("POST", endpoint, "application/sdp", kAv1Only, good);
  EXPECT_EQ(r.status, 422u) << r.body;
  EXPECT_NE(r.body.find("AV1"), std::string::npos) << r.body;

  EXPECT_EQ(http("DELETE", endpoint + "/0123456789abcdef0123456789abcdef", "", "", good).status,
            404u);

  // Still working: a good publisher gets media through.
  r = http("POST", endpoint, "application/sdp", pub.offer, good);
  ASSERT_EQ(r.status, 201u) << r.body;
  pub.apply(r.body);
  EXPECT_TRUE(media_flows(rx, 0, 0)) << "video " << rx.video_decoded.count();

  // A second publisher while one is live: 409, and the first keeps flowing.
  Publisher second;
  ASSERT_TRUE(second.build("VP8", 96, false, 0)) << second.error;
  ASSERT_TRUE(second.make_offer_now()) << second.error;
  r = http("POST", endpoint, "application/sdp", second.offer, good);
  EXPECT_EQ(r.status, 409u) << r.body;
  EXPECT_FALSE(r.body.empty());
  const guint64 v = rx.video_decoded.count();
  EXPECT_TRUE(media_flows(rx, v, 0, false));
  EXPECT_FALSE(rx.bus->has_error()) << rx.bus->error_text();
}

TEST(WhipServerSrc, DeclinesUnsupportedCodecsAndKeepsThePublishersPayloadTypes) {
  Receiver rx;
  rx.play();
  Publisher pub;
  // Audio first, VP8 at PT 120 behind an AV1 payload type we cannot take.
  ASSERT_TRUE(pub.build("VP8", 120, true, 98, 30, true)) << pub.error;
  ASSERT_TRUE(pub.make_offer_now()) << pub.error;
  std::string offer = replace_all(pub.offer, "UDP/TLS/RTP/SAVPF 120", "UDP/TLS/RTP/SAVPF 45 120");
  offer = replace_all(offer, "a=rtpmap:120 VP8/90000", "a=rtpmap:45 AV1/90000\r\na=rtpmap:120 VP8/90000");
  ASSERT_NE(offer.find("a=rtpmap:45 AV1"), std::string::npos);
  HttpResponse r = request(rx.src.get(), "POST", "application/sdp", offer);
  ASSERT_EQ(r.status, 201u) << r.body;
  EXPECT_NE(r.body.find("a=rtpmap:120 VP8/90000"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("a=rtpmap:98 OPUS/48000"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find("AV1"), std::string::npos) << r.body;
  // NACK and RTX survive (loss recovery with a short jitterbuffer).
  EXPECT_NE(r.body.find("a=rtcp-fb:120 nack"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("apt=120"), std::string::npos) << r.body;
  pub.apply(r.body);
  EXPECT_TRUE(media_flows(rx, 0, 0)) << "video " << rx.video_decoded.count() << " audio "
                                     << rx.audio_decoded.count();
}

TEST(WhipServerSrc, SecondPublisherResumesOnTheSamePadsWithoutEos) {
  Receiver rx;
  rx.play();
  std::string first_id;
  {
    Publisher pub;
    ASSERT_TRUE(pub.build("VP8", 96, true, 111)) << pub.error;
    first_id = publish(rx, pub);
    ASSERT_FALSE(first_id.empty());
    ASSERT_TRUE(media_flows(rx, 0, 0));
    EXPECT_EQ(request(rx.src.get(), "DELETE", "", "", first_id).status, 200u);
    ASSERT_TRUE(test::wait_for(
        [&] {
          gboolean p = TRUE;
          g_object_get(rx.src.get(), "publishing", &p, nullptr);
          return !p;
        },
        5000));
  }
  const guint64 v = rx.video_encoded.count(), vd = rx.video_decoded.count(),
                a = rx.audio_decoded.count();
  Publisher pub2;
  ASSERT_TRUE(pub2.build("VP8", 100, true, 101)) << pub2.error;
  ASSERT_FALSE(publish(rx, pub2).empty());
  EXPECT_TRUE(media_flows(rx, vd, a)) << "decoded video " << rx.video_decoded.count() - vd;
  EXPECT_GE(rx.video_encoded.count(), v + 60);
  EXPECT_EQ(rx.video_pads.load(), 1);
  EXPECT_EQ(rx.audio_pads.load(), 1);
  EXPECT_FALSE(rx.bus->has_eos());
  EXPECT_FALSE(rx.bus->has_error()) << rx.bus->error_text();
}

TEST(WhipServerSrc, ForceKeyUnitUpstreamBringsAKeyframeWithin1s) {
  Receiver rx;
  rx.play();
  Publisher pub;
  ASSERT_TRUE(pub.build("VP8", 96, false, 0, 300)) << pub.error;  // 10 s GOP
  ASSERT_FALSE(publish(rx, pub).empty());
  ASSERT_TRUE(test::wait_for([&] { return rx.video_encoded.count() >= 45; }, kLongWait));

  gobj::Ref<GstPad> pad;
  {
    std::lock_guard<std::mutex> l(rx.lock);
    pad = rx.video_pad;
  }
  std::atomic<gint64> keyframe_at{0};
  std::atomic<bool> armed{false};
  struct ProbeData {
    std::atomic<gint64> *at;
    std::atomic<bool> *armed;
  } pd{&keyframe_at, &armed};
  gulong id = gst_pad_add_probe(
      pad.get(), GST_PAD_PROBE_TYPE_BUFFER,
      +[](GstPad *, GstPadProbeInfo *info, gpointer d) {
        auto *pd = static_cast<ProbeData *>(d);
        GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER(info);
        if (*pd->armed && !GST_BUFFER_FLAG_IS_SET(b, GST_BUFFER_FLAG_DELTA_UNIT) && !*pd->at)
          *pd->at = g_get_monotonic_time();
        return GST_PAD_PROBE_OK;
      },
      &pd, nullptr);
  // No keyframe for a while (the GOP is 10 s), then ask for one.
  const guint64 before = rx.video_encoded.count();
  test::wait_for([&] { return rx.video_encoded.count() >= before + 10; }, 5000);
  armed = true;
  EXPECT_EQ(keyframe_at.load(), 0) << "a keyframe came unasked";
  const gint64 asked = g_get_monotonic_time();
  gobj::Ref<GstPad> peer = gobj::adopt(gst_pad_get_peer(pad.get()));
  ASSERT_TRUE(peer);
  gst_pad_push_event(peer.get(),
                     gst_video_event_new_upstream_force_key_unit(GST_CLOCK_TIME_NONE, TRUE, 1));
  EXPECT_TRUE(test::wait_for([&] { return keyframe_at.load() != 0; }, 1500));
  if (keyframe_at.load()) {
    EXPECT_LT(keyframe_at.load() - asked, 1000 * 1000);
    std::printf("keyframe %lld ms after the request\n",
                static_cast<long long>((keyframe_at.load() - asked) / 1000));
  }
  // A second request inside the rate-limit window (a second viewer joining
  // right after the first) is held back, not lost: its keyframe comes once
  // the window ends, long before the 10 s GOP would bring one.
  ASSERT_NE(keyframe_at.load(), 0);
  keyframe_at = 0;
  const gint64 asked_again = g_get_monotonic_time();
  gst_pad_push_event(peer.get(),
                     gst_video_event_new_upstream_force_key_unit(GST_CLOCK_TIME_NONE, TRUE, 2));
  EXPECT_TRUE(test::wait_for([&] { return keyframe_at.load() != 0; }, 2000))
      << "a request inside the rate-limit window was dropped";
  if (keyframe_at.load()) {
    EXPECT_LT(keyframe_at.load() - asked_again, 1000 * 1000);
    std::printf("second keyframe %lld ms after its request (inside the window)\n",
                static_cast<long long>((keyframe_at.load() - asked_again) / 1000));
  }
  gst_pad_remove_probe(pad.get(), id);
}

TEST(WhipServerSrc, TrickleIcePatchStatuses) {
  Receiver rx;
  rx.play();
  Publisher pub;
  ASSERT_TRUE(pub.build("VP8", 96, false, 0)) << pub.error;
  ASSERT_TRUE(pub.make_offer_now()) << pub.error;
  HttpResponse r = request(rx.src.get(), "POST", "application/sdp", pub.offer);
  ASSERT_EQ(r.status, 201u) << r.body;
  const std::string id = r.session, etag = r.etag;
  auto at = pub.offer.find("a=ice-ufrag:");
  ASSERT_NE(at, std::string::npos);
  const std::string ufrag = pub.offer.substr(at + 12, pub.offer.find_first_of("\r\n", at) - at - 12);
  const std::string frag = "a=ice-ufrag:" + ufrag +
                           "\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:video0\r\n"
                           "a=candidate:9 1 UDP 2015363327 127.0.0.1 9 typ host\r\n"
                           "a=end-of-candidates\r\n";
  EXPECT_EQ(request(rx.src.get(), "PATCH", "application/trickle-ice-sdpfrag", frag, id).status,
            204u);
  EXPECT_EQ(request(rx.src.get(), "PATCH", "application/sdp", frag, id).status, 415u);
  EXPECT_EQ(request(rx.src.get(), "PATCH", "application/trickle-ice-sdpfrag", frag,
                    "0123456789abcdef0123456789abcdef")
                .status,
            404u);
  // A new ufrag is an ICE restart, which this element does not do (RFC 9725: 422).
  const std::string restart = replace_all(frag, ufrag, "newufrag");
  r = request(rx.src.get(), "PATCH", "application/trickle-ice-sdpfrag", restart, id);
  EXPECT_EQ(r.status, 422u) << r.body;
  // If-Match naming another ETag: 412.
  HttpRequest req;
  req.method = "PATCH";
  req.session = id;
  req.content_type = "application/trickle-ice-sdpfrag";
  req.if_match = "\"not-the-etag\"";
  req.body = gobj::adopt(g_bytes_new(frag.data(), frag.size()));
  std::shared_ptr<HttpResponse> out;
  submit_request(rx.src.get(), req, g_main_context_default(),
                 [&out](HttpResponse x) { out = std::make_shared<HttpResponse>(std::move(x)); });
  ASSERT_TRUE(test::wait_for([&] { return out != nullptr; }, 5000));
  EXPECT_EQ(out->status, 412u);
  EXPECT_EQ(request(rx.src.get(), "DELETE", "", "", id).status, 200u);
}

TEST(WhipServerSrc, ReplacePublisherTakesOverTheLiveInput) {
  Receiver rx;
  g_object_set(rx.src.get(), "replace-publisher", TRUE, nullptr);
  rx.play();
  std::atomic<int> connected{0}, disconnected{0};
  g_signal_connect(rx.src.get(), "publisher-connected",
                   G_CALLBACK(+[](GstElement *, const char *, gpointer d) {
                     (*static_cast<std::atomic<int> *>(d))++;
                   }),
                   &connected);
  g_signal_connect(rx.src.get(), "publisher-disconnected",
                   G_CALLBACK(+[](GstElement *, const char *, gpointer d) {
                     (*static_cast<std::atomic<int> *>(d))++;
                   }),
                   &disconnected);
  Publisher first;
  ASSERT_TRUE(first.build("VP8", 96, true, 111)) << first.error;
  ASSERT_FALSE(publish(rx, first).empty());
  ASSERT_TRUE(media_flows(rx, 0, 0));
  Publisher second;
  ASSERT_TRUE(second.build("VP8", 96, true, 111)) << second.error;
  ASSERT_FALSE(publish(rx, second).empty());  // 201, not 409
  EXPECT_TRUE(test::wait_for([&] { return disconnected.load() == 1; }, 5000));
  // The first publisher is gone: stop it so only the second can feed us.
  gst_element_set_state(first.pipeline.get(), GST_STATE_NULL);
  const guint64 v = rx.video_decoded.count(), a = rx.audio_decoded.count();
  EXPECT_TRUE(media_flows(rx, v, a));
  EXPECT_EQ(connected.load(), 2);
  EXPECT_EQ(rx.video_pads.load(), 1);
  EXPECT_FALSE(rx.bus->has_eos());
  g_signal_handlers_disconnect_by_data(rx.src.get(), &connected);
  g_signal_handlers_disconnect_by_data(rx.src.get(), &disconnected);
}

TEST(WhipServerSrc, CodecChangeOnALiveInputIs422) {
  if (!have("x264enc") && !have("openh264enc")) FAIL() << "no H.264 encoder";
  Receiver rx;
  rx.play();
  {
    Publisher vp8;
    ASSERT_TRUE(vp8.build("VP8", 96, false, 0)) << vp8.error;
    const std::string id = publish(rx, vp8);
    ASSERT_FALSE(id.empty());
    ASSERT_TRUE(media_flows(rx, 0, 0, false));
    EXPECT_EQ(request(rx.src.get(), "DELETE", "", "", id).status, 200u);
  }
  Publisher h264;
  ASSERT_TRUE(h264.build("H264", 102, false, 0)) << h264.error;
  ASSERT_TRUE(h264.make_offer_now()) << h264.error;
  HttpResponse r = request(rx.src.get(), "POST", "application/sdp", h264.offer);
  EXPECT_EQ(r.status, 422u) << r.body;
  EXPECT_NE(r.body.find("codec change"), std::string::npos) << r.body;
}

TEST(WhipServerSrc, VanishedPublisherIsCleanedUpAfterPublisherTimeout) {
  Receiver rx;
  // 3 s instead of the default 15: what is tested is that the publisher is
  // noticed, not how long the default is.
  g_object_set(rx.src.get(), "publisher-timeout", 3u, nullptr);
  rx.play();
  std::atomic<int> disconnected{0};
  g_signal_connect(rx.src.get(), "publisher-disconnected",
                   G_CALLBACK(+[](GstElement *, const char *, gpointer d) {
                     (*static_cast<std::atomic<int> *>(d))++;
                   }),
                   &disconnected);
  {
    Publisher pub;
    ASSERT_TRUE(pub.build("VP8", 96, true, 111)) << pub.error;
    ASSERT_FALSE(publish(rx, pub).empty());
    ASSERT_TRUE(media_flows(rx, 0, 0));
  }  // the publisher disappears without DELETE
  const gint64 gone = g_get_monotonic_time();
  EXPECT_TRUE(test::wait_for([&] { return disconnected.load() == 1; }, 15000));
  const gint64 waited_ms = (g_get_monotonic_time() - gone) / 1000;
  std::printf("vanished publisher detected after %lld ms (publisher-timeout=3)\n",
              static_cast<long long>(waited_ms));
  // The timeout, plus at most the 1 s watchdog tick, plus scheduling slack.
  EXPECT_GE(waited_ms, 2000);
  EXPECT_LT(waited_ms, 8000);
  gboolean p = TRUE;
  g_object_get(rx.src.get(), "publishing", &p, nullptr);
  EXPECT_FALSE(p);
  // And a new publisher is taken (no 409 left behind).
  Publisher next;
  ASSERT_TRUE(next.build("VP8", 96, true, 111)) << next.error;
  ASSERT_FALSE(publish(rx, next).empty());
  const guint64 v = rx.video_decoded.count();
  EXPECT_TRUE(media_flows(rx, v, 0, false));
  EXPECT_FALSE(rx.bus->has_eos());
  g_signal_handlers_disconnect_by_data(rx.src.get(), &disconnected);
}

namespace {

// whipsink (our WHIP client) -> whipserversrc's standalone listener.
void whipsink_to_whipserversrc(const char *codec) {
  if (!test::factory_is_ours("whipsink")) FAIL() << "whipsink is not built";
  ASSERT_TRUE(test::factory_is_ours("whipserversrc"));
  const guint port = test::free_tcp_port();
  Receiver rx(port);
  rx.play();
  const std::string desc =
      "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 "
      "! whipsink name=ws ice-addresses=127.0.0.1 timeout=10 video-codec=" +
      std::string(codec) + " whip-endpoint=http://127.0.0.1:" + std::to_string(port) +
      "/whip audiotestsrc is-live=true ! ws.";
  gobj::Unique<GError> err;
  gobj::Ref<GstElement> pub = gobj::sink(gst_parse_launch(desc.c_str(), gobj::out(err)));
  ASSERT_TRUE(pub) << (err ? err->message : "");
  test::BusWatcher pub_bus(pub.get());
  ASSERT_NE(gst_element_set_state(pub.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  EXPECT_TRUE(media_flows(rx, 0, 0)) << "video " << rx.video_decoded.count() << " audio "
                                     << rx.audio_decoded.count() << " publisher error: "
                                     << pub_bus.error_text();
  EXPECT_FALSE(pub_bus.has_error()) << pub_bus.error_text();
  EXPECT_FALSE(rx.bus->has_error()) << rx.bus->error_text();
  // whipsink DELETEs its session on the way to NULL: the input goes idle.
  gst_element_set_state(pub.get(), GST_STATE_NULL);
  EXPECT_TRUE(test::wait_for(
      [&] {
        gboolean p = TRUE;
        g_object_get(rx.src.get(), "publishing", &p, nullptr);
        return !p;
      },
      5000));
}

}  // namespace

TEST(WhipServerSrc, WhipsinkVp8AndOpusOverTheListener) { whipsink_to_whipserversrc("vp8"); }

TEST(WhipServerSrc, WhipsinkH264AndOpusOverTheListener) {
  if (!have("x264enc") && !have("openh264enc")) FAIL() << "no H.264 encoder";
  whipsink_to_whipserversrc("h264");
}
