// whepsrc: plays from a scripted test server (error paths) and from a
// test-side sending webrtcbin (success paths: decoded and encoded output).
#include <gtest/gtest.h>

#include <atomic>
#include <iostream>
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
  test::BufferCounter counter;
  explicit PipelineRun(const std::string &desc) {
    gobj::Unique<GError> err;
    pipeline = gobj::sink(gst_parse_launch(desc.c_str(), gobj::out(err)));
    EXPECT_TRUE(pipeline) << (err ? err->message : "");
    bus = std::make_unique<test::BusWatcher>(pipeline.get());
    gobj::Ref<GstElement> out = gobj::adopt(gst_bin_get_by_name(GST_BIN(pipeline.get()), "out"));
    if (out) {
      gobj::Ref<GstPad> pad = gobj::adopt(gst_element_get_static_pad(out.get(), "sink"));
      counter.attach(pad.get());
    }
  }
  ~PipelineRun() {
    if (pipeline) gst_element_set_state(pipeline.get(), GST_STATE_NULL);
  }
  void play() { gst_element_set_state(pipeline.get(), GST_STATE_PLAYING); }
  std::string out_caps() {
    gobj::Ref<GstElement> out = gobj::adopt(gst_bin_get_by_name(GST_BIN(pipeline.get()), "out"));
    gobj::Ref<GstPad> pad = gobj::adopt(gst_element_get_static_pad(out.get(), "sink"));
    gobj::Ref<GstCaps> caps = gobj::adopt(gst_pad_get_current_caps(pad.get()));
    if (!caps) return "";
    return gst_structure_get_name(gst_caps_get_structure(caps.get(), 0));
  }
};

std::string src(const std::string &url, const std::string &extra = "") {
  return "whepsrc name=w whep-endpoint=" + url + " ice-addresses=127.0.0.1 timeout=4 " + extra;
}

void expect_error(TestHttpServer::Handler handler, const std::string &expect_in_message,
                  guint expect_status) {
  TestHttpServer server(std::move(handler));
  ASSERT_NE(server.port(), 0u);
  PipelineRun run(src(server.url("/whep")) + " ! fakesink name=out");
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

TEST(WhepSrc, FactoryIsOurs) { EXPECT_TRUE(test::factory_is_ours("whepsrc")); }

TEST(WhepSrc, UnauthorizedNamesStatusAndReason) {
  expect_error([](const SeenRequest &, TestHttpServer::Respond r) {
    r(Reply{401, "text/plain", "signed playback required", {{"WWW-Authenticate", "Bearer"}}});
  }, "signed playback required", 401);
}

TEST(WhepSrc, NotFoundNamesStatusAndReason) {
  expect_error([](const SeenRequest &, TestHttpServer::Respond r) {
    r(Reply{404, "text/plain", "no such live input", {}});
  }, "no such live input", 404);
}

TEST(WhepSrc, ServerErrorNamesStatusAndReason) {
  expect_error([](const SeenRequest &, TestHttpServer::Respond r) {
    r(Reply{500, "text/plain", "internal trouble", {}});
  }, "internal trouble", 500);
}

TEST(WhepSrc, MalformedAnswerIsAnError) {
  expect_error([](const SeenRequest &, TestHttpServer::Respond r) {
    r(Reply{201, "application/sdp", "garbage", {{"Location", "/whep/x"}}});
  }, "unusable answer", 201);
}

TEST(WhepSrc, CreatedWithoutLocationIsAnError) {
  expect_error([](const SeenRequest &, TestHttpServer::Respond r) {
    r(Reply{201, "application/sdp", "v=0\r\n", {}});
  }, "without a Location", 201);
}

TEST(WhepSrc, SilentServerTimesOut) {
  expect_error([](const SeenRequest &, TestHttpServer::Respond) {}, "no answer within 4 s", 0);
}

TEST(WhepSrc, ConnectionRefusedIsAnError) {
  guint port = test::free_tcp_port();
  PipelineRun run(src("http://127.0.0.1:" + std::to_string(port) + "/whep") + " ! fakesink name=out");
  run.play();
  ASSERT_TRUE(test::wait_for([&] { return run.bus->has_error(); }, 9000));
  EXPECT_NE(run.bus->error_text().find("did not answer"), std::string::npos) << run.bus->error_text();
}

TEST(WhepSrc, OffersRecvonlyWithFeedbackAndRtx) {
  TestHttpServer server([](const SeenRequest &, TestHttpServer::Respond r) {
    r(Reply{503, "text/plain", "busy", {}});
  });
  PipelineRun run(src(server.url("/whep"), "auth-token=tk") + " ! fakesink name=out");
  run.play();
  ASSERT_TRUE(test::wait_for([&] { return run.bus->has_error(); }, 9000));
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  const std::string &offer = reqs[0].body;
  EXPECT_EQ(reqs[0].authorization, "Bearer tk");
  EXPECT_NE(offer.find("a=recvonly"), std::string::npos);
  EXPECT_EQ(offer.find("a=sendonly"), std::string::npos);
  EXPECT_NE(offer.find("m=audio"), std::string::npos);
  EXPECT_NE(offer.find("VP8/90000"), std::string::npos);
  EXPECT_NE(offer.find("H264/90000"), std::string::npos);
  EXPECT_NE(offer.find("OPUS/48000"), std::string::npos);
  EXPECT_NE(offer.find("nack pli"), std::string::npos);
  EXPECT_NE(offer.find("ccm fir"), std::string::npos);
  EXPECT_NE(offer.find("rtx/90000"), std::string::npos);
  EXPECT_NE(offer.find("a=group:BUNDLE"), std::string::npos);
}

TEST(WhepSrc, DecodesVideoAndDeletesOnNull) {
  test::SendingPeer peer;
  ASSERT_TRUE(peer.ready(5000));
  TestHttpServer server([&](const SeenRequest &q, TestHttpServer::Respond r) { peer.handle(q, r); });
  {
    PipelineRun run(src(server.url("/whep"), "audio=false") + " ! fakesink name=out sync=false");
    run.play();
    EXPECT_TRUE(test::wait_for([&] { return run.counter.count() >= 60 || run.bus->has_error(); },
                               kDecodeTimeoutMs));
    EXPECT_FALSE(run.bus->has_error()) << run.bus->error_text();
    EXPECT_GE(run.counter.count(), 60u);
    EXPECT_EQ(run.out_caps(), "video/x-raw");
    gst_element_set_state(run.pipeline.get(), GST_STATE_NULL);
    EXPECT_EQ(server.count("DELETE"), 1);
  }
}

// A WHEP endpoint whose stream is not live yet answers 503 + Retry-After
// (ours: "no publisher yet"); with retry-timeout the player comes back as
// told, with the same offer, instead of failing.
TEST(WhepSrc, RetriesWhileTheServerSaysComeBackLater) {
  test::SendingPeer peer;
  ASSERT_TRUE(peer.ready(5000));
  std::atomic<int> posts{0};
  TestHttpServer server([&](const SeenRequest &q, TestHttpServer::Respond r) {
    if (q.method == "POST" && ++posts <= 2) {
      r(Reply{503, "text/plain", "no publisher yet", {{"Retry-After", "1"}}});
      return;
    }
    peer.handle(q, r);
  });
  PipelineRun run(src(server.url("/whep"), "audio=false retry-timeout=10") +
                  " ! fakesink name=out sync=false");
  const gint64 start = g_get_monotonic_time();
  run.play();
  ASSERT_TRUE(test::wait_for([&] { return run.counter.count() >= 30 || run.bus->has_error(); },
                             kDecodeTimeoutMs));
  EXPECT_FALSE(run.bus->has_error()) << run.bus->error_text();
  EXPECT_EQ(posts.load(), 3);
  EXPECT_EQ(run.bus->warnings(), 2);
  EXPECT_NE(run.bus->last_warning().find("503"), std::string::npos) << run.bus->last_warning();
  EXPECT_NE(run.bus->last_warning().find("retrying in 1 s"), std::string::npos)
      << run.bus->last_warning();
  // Two waits of Retry-After (1 s) before the answer.
  EXPECT_GE(run.counter.first_time() - start, 2 * G_USEC_PER_SEC);
  auto reqs = server.requests();
  ASSERT_GE(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].body, reqs[2].body) << "a retry re-POSTs the same offer";
}

TEST(WhepSrc, RetryTimeoutBoundsTheRetries) {
  std::atomic<int> posts{0};
  TestHttpServer server([&](const SeenRequest &, TestHttpServer::Respond r) {
    posts++;
    r(Reply{503, "text/plain", "no publisher yet", {{"Retry-After", "1"}}});
  });
  PipelineRun run(src(server.url("/whep"), "retry-timeout=2") + " ! fakesink name=out");
  const gint64 start = g_get_monotonic_time();
  run.play();
  ASSERT_TRUE(test::wait_for([&] { return run.bus->has_error(); }, 10000));
  const gint64 took_ms = (g_get_monotonic_time() - start) / 1000;
  // POST, 1 s, POST: a third would come 2 s after the first, past the
  // budget, so the second 503 is final.
  EXPECT_GE(took_ms, 900);
  EXPECT_LT(took_ms, 5000);
  EXPECT_EQ(posts.load(), 2);
  EXPECT_NE(run.bus->error_text().find("503"), std::string::npos) << run.bus->error_text();
  EXPECT_NE(run.bus->error_text().find("retries"), std::string::npos) << run.bus->error_text();
}

// libnice in webrtcbin has no consent freshness: without the RTCP watchdog a
// player whose server ended the session would wait forever, silently.
TEST(WhepSrc, ServerThatStopsSendingRtcpIsAnErrorWithinRtcpTimeout) {
  // The peer sends RTCP about every second (client-test-server.cpp), so a
  // 3 s timeout is three missed reports, as 20 s (the default) is for a
  // server on rtpsession's 5 s interval.
  test::SendingPeer peer;
  ASSERT_TRUE(peer.ready(5000));
  TestHttpServer server([&](const SeenRequest &q, TestHttpServer::Respond r) { peer.handle(q, r); });
  PipelineRun run(src(server.url("/whep"), "audio=false rtcp-timeout=3") + " ! fakesink name=out sync=false");
  run.play();
  ASSERT_TRUE(test::wait_for([&] { return run.counter.count() >= 30 || run.bus->has_error(); },
                             kDecodeTimeoutMs));
  ASSERT_FALSE(run.bus->has_error()) << run.bus->error_text();
  // Still healthy after more than the RTCP timeout while the server lives.
  test::wait_for([] { return false; }, 5000);
  ASSERT_FALSE(run.bus->has_error()) << run.bus->error_text();
  const gint64 stopped = g_get_monotonic_time();
  peer.stop();
  ASSERT_TRUE(test::wait_for([&] { return run.bus->has_error(); }, 15000)) << "no error after the server vanished";
  const gint64 waited_ms = (g_get_monotonic_time() - stopped) / 1000;
  // The timeout plus the 1 s liveness tick, with slack for a loaded machine.
  EXPECT_GE(waited_ms, 1500);
  EXPECT_LT(waited_ms, 8000);
  EXPECT_NE(run.bus->error_text().find("stopped sending RTCP"), std::string::npos) << run.bus->error_text();
  std::cout << "error " << waited_ms << " ms after the server vanished (rtcp-timeout=3)" << std::endl;
}

TEST(WhepSrc, OutputsEncodedVp8WhenDownstreamAsks) {
  test::SendingPeer peer;
  ASSERT_TRUE(peer.ready(5000));
  TestHttpServer server([&](const SeenRequest &q, TestHttpServer::Respond r) { peer.handle(q, r); });
  PipelineRun run(src(server.url("/whep"), "audio=false") + " ! video/x-vp8 ! fakesink name=out sync=false");
  run.play();
  EXPECT_TRUE(test::wait_for([&] { return run.counter.count() >= 60 || run.bus->has_error(); },
                             kDecodeTimeoutMs));
  EXPECT_FALSE(run.bus->has_error()) << run.bus->error_text();
  EXPECT_GE(run.counter.count(), 60u);
  EXPECT_EQ(run.out_caps(), "video/x-vp8");
}

}  // namespace
