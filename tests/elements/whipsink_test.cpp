// whipsink: publishes to a scripted test server (error paths) and to a
// test-side receiving webrtcbin that decodes (success paths).
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>

#include "client-test-server.h"
#include "harness.h"

namespace {

using test::Reply;
using test::SeenRequest;
using test::TestHttpServer;

constexpr guint kDecodeTimeoutMs = 20000;

struct PipelineRun {
  gobj::Ref<GstElement> pipeline;
  std::unique_ptr<test::BusWatcher> bus;
  explicit PipelineRun(const std::string &desc) {
    gobj::Unique<GError> err;
    pipeline = gobj::sink(gst_parse_launch(desc.c_str(), gobj::out(err)));
    EXPECT_TRUE(pipeline) << (err ? err->message : "");
    bus = std::make_unique<test::BusWatcher>(pipeline.get());
  }
  void play() { gst_element_set_state(pipeline.get(), GST_STATE_PLAYING); }
  ~PipelineRun() {
    if (pipeline) gst_element_set_state(pipeline.get(), GST_STATE_NULL);
  }
  GstElement *by_name(const char *name) {
    return gst_bin_get_by_name(GST_BIN(pipeline.get()), name);  // transfer full
  }
};

std::string video_src(const std::string &tail) {
  return "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! " + tail;
}

std::string sink(const std::string &url, const std::string &extra = "") {
  return "whipsink name=s whip-endpoint=" + url + " ice-addresses=127.0.0.1 timeout=4 " + extra;
}

// Whether any element inside `bin` (recursively) is an encoder.
bool has_encoder(GstElement *bin) {
  bool found = false;
  // Direct children only: webrtcbin holds FEC/RED elements of its own.
  GstIterator *it = gst_bin_iterate_elements(GST_BIN(bin));
  GValue v = G_VALUE_INIT;
  while (gst_iterator_next(it, &v) == GST_ITERATOR_OK) {
    GstElement *e = GST_ELEMENT(g_value_get_object(&v));
    GstElementFactory *f = gst_element_get_factory(e);
    const char *klass = f ? gst_element_factory_get_metadata(f, GST_ELEMENT_METADATA_KLASS) : nullptr;
    if (klass && strstr(klass, "Encoder")) found = true;
    g_value_reset(&v);
  }
  g_value_unset(&v);
  gst_iterator_free(it);
  return found;
}

// Start a pipeline against a server that fails, expect a readable error
// within timeout (4 s) + margin, naming `expect_in_message`.
void expect_error(TestHttpServer::Handler handler, const std::string &expect_in_message,
                  guint expect_status, std::string url_path = "/whip") {
  TestHttpServer server(std::move(handler));
  ASSERT_NE(server.port(), 0u);
  PipelineRun run(video_src(sink(server.url(url_path))));
  gint64 start = g_get_monotonic_time();
  run.play();
  ASSERT_TRUE(test::wait_for([&] { return run.bus->has_error(); }, 9000)) << "no error within 9 s";
  EXPECT_LT(g_get_monotonic_time() - start, 8 * G_USEC_PER_SEC);
  std::string text = run.bus->error_text();
  EXPECT_NE(text.find(expect_in_message), std::string::npos) << text;
  if (expect_status) {
    EXPECT_NE(text.find(std::to_string(expect_status)), std::string::npos) << text;
    const GstStructure *d = run.bus->error_details();
    ASSERT_NE(d, nullptr) << text;
    guint status = 0;
    EXPECT_TRUE(gst_structure_get_uint(d, "http-status-code", &status));
    EXPECT_EQ(status, expect_status);
  }
}

TEST(WhipSink, FactoryIsOurs) { EXPECT_TRUE(test::factory_is_ours("whipsink")); }

TEST(WhipSink, UnauthorizedNamesStatusAndReason) {
  expect_error([](const SeenRequest &, TestHttpServer::Respond r) {
    r(Reply{401, "text/plain", "token expired", {{"WWW-Authenticate", "Bearer"}}});
  }, "token expired", 401);
}

TEST(WhipSink, NotFoundNamesStatusAndReason) {
  expect_error([](const SeenRequest &, TestHttpServer::Respond r) {
    r(Reply{404, "text/plain", "no such live input", {}});
  }, "no such live input", 404);
}

TEST(WhipSink, ServerErrorNamesStatusAndReason) {
  expect_error([](const SeenRequest &, TestHttpServer::Respond r) {
    r(Reply{500, "text/plain", "database on fire", {}});
  }, "database on fire", 500);
}

TEST(WhipSink, MalformedAnswerIsAnError) {
  expect_error([](const SeenRequest &, TestHttpServer::Respond r) {
    r(Reply{201, "application/sdp", "this is not sdp", {{"Location", "/whip/x"}}});
  }, "unusable answer", 201);
}

TEST(WhipSink, CreatedWithoutLocationIsAnError) {
  expect_error([](const SeenRequest &, TestHttpServer::Respond r) {
    r(Reply{201, "application/sdp", "v=0\r\n", {}});
  }, "without a Location", 201);
}

TEST(WhipSink, SilentServerTimesOut) {
  expect_error([](const SeenRequest &, TestHttpServer::Respond) { /* never answers */ },
               "no answer within 4 s", 0);
}

TEST(WhipSink, ConnectionRefusedIsAnError) {
  guint port = test::free_tcp_port();
  PipelineRun run(video_src(sink("http://127.0.0.1:" + std::to_string(port) + "/whip")));
  run.play();
  ASSERT_TRUE(test::wait_for([&] { return run.bus->has_error(); }, 9000));
  EXPECT_NE(run.bus->error_text().find("did not answer"), std::string::npos) << run.bus->error_text();
}

TEST(WhipSink, MissingEndpointFailsToStart) {
  PipelineRun run(video_src("whipsink ice-addresses=127.0.0.1"));
  EXPECT_EQ(gst_element_set_state(run.pipeline.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  EXPECT_NE(run.bus->error_text().find("no WHIP endpoint"), std::string::npos) << run.bus->error_text();
}

TEST(WhipSink, PublishesRawVideoAsVp8AndDeletesOnNull) {
  test::ReceivingPeer peer;
  TestHttpServer server([&](const SeenRequest &q, TestHttpServer::Respond r) { peer.handle(q, r); });
  {
    PipelineRun run(video_src(sink(server.url("/whip"))));
    run.play();
    EXPECT_TRUE(test::wait_for([&] { return peer.video_frames() >= 60 || run.bus->has_error(); },
                               kDecodeTimeoutMs))
        << peer.video_frames();
    EXPECT_FALSE(run.bus->has_error()) << run.bus->error_text();
    EXPECT_GE(peer.video_frames(), 60u);
    EXPECT_EQ(peer.codecs(), std::vector<std::string>{"VP8"});
    gobj::Ref<GstElement> s = gobj::adopt(run.by_name("s"));
    EXPECT_TRUE(has_encoder(s.get()));
    gchar *res = nullptr;
    g_object_get(s.get(), "resource-url", &res, nullptr);
    gobj::Unique<gchar> resource(res);
    EXPECT_EQ(gobj::str_or(res), server.url("/whip/session-1"));  // relative Location resolved
    gst_element_set_state(run.pipeline.get(), GST_STATE_NULL);
    // The DELETE went out before set_state(NULL) returned.
    EXPECT_EQ(server.count("DELETE"), 1);
  }
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].content_type, "application/sdp");
  EXPECT_EQ(reqs[1].path, "/whip/session-1");
}

TEST(WhipSink, PublishesRawVideoAsH264) {
  test::ReceivingPeer peer;
  TestHttpServer server([&](const SeenRequest &q, TestHttpServer::Respond r) { peer.handle(q, r); });
  PipelineRun run(video_src(sink(server.url("/whip"), "video-codec=h264")));
  run.play();
  EXPECT_TRUE(test::wait_for([&] { return peer.video_frames() >= 60 || run.bus->has_error(); },
                             kDecodeTimeoutMs));
  EXPECT_FALSE(run.bus->has_error()) << run.bus->error_text();
  EXPECT_GE(peer.video_frames(), 60u);
  EXPECT_EQ(peer.codecs(), std::vector<std::string>{"H264"});
}

TEST(WhipSink, PreEncodedVp8IsNotReencodedAndAudioFlows) {
  test::ReceivingPeer peer;
  TestHttpServer server([&](const SeenRequest &q, TestHttpServer::Respond r) { peer.handle(q, r); });
  PipelineRun run(video_src("vp8enc deadline=1 cpu-used=8 keyframe-max-dist=30 ! " +
                    sink(server.url("/whip"), "auth-token=secret") +
                    " audiotestsrc is-live=true wave=ticks ! audio/x-raw,rate=48000,channels=2 ! "
                    "opusenc ! s.audio_0"));
  run.play();
  EXPECT_TRUE(test::wait_for([&] {
    return (peer.video_frames() >= 60 && peer.audio_buffers() >= 50) || run.bus->has_error();
  }, kDecodeTimeoutMs));
  EXPECT_FALSE(run.bus->has_error()) << run.bus->error_text();
  EXPECT_GE(peer.video_frames(), 60u);
  EXPECT_GE(peer.audio_buffers(), 50u);
  gobj::Ref<GstElement> s = gobj::adopt(run.by_name("s"));
  EXPECT_FALSE(has_encoder(s.get()));
  EXPECT_EQ(server.requests().at(0).authorization, "Bearer secret");
}

TEST(WhipSink, RawAudioIsEncodedToOpus) {
  test::ReceivingPeer peer;
  TestHttpServer server([&](const SeenRequest &q, TestHttpServer::Respond r) { peer.handle(q, r); });
  PipelineRun run(video_src(sink(server.url("/whip"))) +
          " audiotestsrc is-live=true ! audio/x-raw,rate=44100,channels=2 ! s.audio_0");
  run.play();
  EXPECT_TRUE(test::wait_for([&] {
    return (peer.video_frames() >= 60 && peer.audio_buffers() >= 50) || run.bus->has_error();
  }, kDecodeTimeoutMs));
  EXPECT_FALSE(run.bus->has_error()) << run.bus->error_text();
  EXPECT_GE(peer.audio_buffers(), 50u);
}

TEST(WhipSink, FollowsTemporaryRedirectKeepingToken) {
  test::ReceivingPeer peer;
  TestHttpServer server([&](const SeenRequest &q, TestHttpServer::Respond r) {
    if (q.method == "POST" && q.path == "/lb")
      return r(Reply{307, "text/plain", "go elsewhere", {{"Location", "/whip"}}});
    peer.handle(q, r);
  });
  PipelineRun run(video_src(sink(server.url("/lb"), "auth-token=tok")));
  run.play();
  EXPECT_TRUE(test::wait_for([&] { return peer.video_frames() >= 10 || run.bus->has_error(); },
                             kDecodeTimeoutMs));
  EXPECT_FALSE(run.bus->has_error()) << run.bus->error_text();
  auto reqs = server.requests();
  ASSERT_GE(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].path, "/lb");
  EXPECT_EQ(reqs[1].path, "/whip");
  EXPECT_EQ(reqs[1].method, "POST");
  EXPECT_EQ(reqs[1].authorization, "Bearer tok");
  EXPECT_EQ(reqs[1].body, reqs[0].body);
}

TEST(WhipSink, DeletesOnEos) {
  test::ReceivingPeer peer;
  TestHttpServer server([&](const SeenRequest &q, TestHttpServer::Respond r) { peer.handle(q, r); });
  PipelineRun run(video_src(sink(server.url("/whip"))));
  run.play();
  ASSERT_TRUE(test::wait_for([&] { return peer.video_frames() >= 10 || run.bus->has_error(); },
                             kDecodeTimeoutMs));
  gst_element_send_event(run.pipeline.get(), gst_event_new_eos());
  EXPECT_TRUE(test::wait_for([&] { return server.count("DELETE") == 1; }, 5000));
}

}  // namespace

// ---- end to end through the real WHIP server element ---------------------

namespace {

struct Counted {
  std::atomic<guint64> n{0};
  void attach(GstElement *pipeline, const char *name) {
    gobj::Ref<GstElement> e = gobj::adopt(gst_bin_get_by_name(GST_BIN(pipeline), name));
    gobj::Ref<GstPad> pad = gobj::adopt(gst_element_get_static_pad(e.get(), "sink"));
    gst_pad_add_probe(pad.get(), GST_PAD_PROBE_TYPE_BUFFER,
                      +[](GstPad *, GstPadProbeInfo *, gpointer d) -> GstPadProbeReturn {
                        static_cast<Counted *>(d)->n++;
                        return GST_PAD_PROBE_OK;
                      },
                      this, nullptr);
  }
};

// whipsink -> whipserversrc end to end (VP8/H.264 + Opus) lives in
// whipserversrc_test.cpp (WhipsinkVp8AndOpusOverTheListener, ...).


}  // namespace
