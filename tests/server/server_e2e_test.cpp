// End to end through the real whipwhep-server: create a live input over the
// API, publish to its webRTC.url with whipsink, play its webRTCPlayback.url
// with whepsrc, decode frames; status and liveViewers follow; DELETE ends
// both sessions; inputs survive SIGKILL and take a publisher again.
// Loopback only: the server and both clients gather ICE on 127.0.0.1.
#include <gtest/gtest.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "harness.h"
#include "client-pipeline.h"
#include "server-process.h"

using test::http;
using test::HttpReply;

namespace {

using test::Client;

constexpr const char *kToken = "e2e-token-0123456789abcdef";

std::string member(JsonObject *o, const char *block, const char *name) {
  if (!o) return {};
  JsonObject *b = block ? json_object_get_object_member(o, block) : o;
  if (!b || !json_object_has_member(b, name) ||
      JSON_NODE_HOLDS_NULL(json_object_get_member(b, name)))
    return {};
  return gobj::str_or(json_object_get_string_member(b, name));
}

// A gst-launch pipeline in this process, with its bus watched.

std::string publisher_launch(const std::string &url) {
  return "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,"
         "framerate=30/1 ! whipsink name=whip ice-addresses=127.0.0.1 whip-endpoint=" + url;
}

std::string viewer_launch(const std::string &url) {
  // decodebin: whatever whepsrc outputs (RTP-depayloaded encoded media or raw
  // frames), what reaches `out` are decoded frames.
  return "whepsrc name=whep ice-addresses=127.0.0.1 whep-endpoint=" + url +
         " ! decodebin ! videoconvert ! video/x-raw ! fakesink name=out sync=false";
}

class ServerE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::our_elements({"whipserversrc", "whepserversink", "whipsink", "whepsrc"})) FAIL() << "the four elements missing or not from the whipwhep plugin";
    ASSERT_TRUE(server_.start({"--api-token", kToken})) << server_.output();
  }
  void TearDown() override {
    if (server_.running()) {
      EXPECT_EQ(server_.terminate(), 0) << server_.output();
    }
  }

  JsonObject *get_input(const std::string &uid, HttpReply *keep) {
    *keep = http("GET", server_.live_inputs_url() + "/" + uid, kToken);
    return keep->result();
  }
  std::string status(const std::string &uid) {
    HttpReply r;
    return member(get_input(uid, &r), nullptr, "status");
  }
  gint64 viewers(const std::string &uid) {
    HttpReply r;
    JsonObject *o = get_input(uid, &r);
    return o ? json_object_get_int_member(o, "liveViewers") : -1;
  }

  test::TempDir dir_;
  test::ServerProcess server_{dir_.path()};
};

TEST_F(ServerE2E, PublishPlayStatusViewersAndDeleteEndsBothSessions) {
  HttpReply created = http("POST", server_.live_inputs_url(), kToken, "application/json",
                           R"({"meta":{"name":"e2e"}})");
  ASSERT_EQ(created.status, 200u) << created.body;
  const std::string uid = member(created.result(), nullptr, "uid");
  const std::string publish_url = member(created.result(), "webRTC", "url");
  const std::string play_url = member(created.result(), "webRTCPlayback", "url");
  EXPECT_EQ(status(uid), "");  // null: never used

  Client publisher(publisher_launch(publish_url));
  ASSERT_TRUE(publisher.pipeline);
  publisher.play();
  ASSERT_TRUE(test::wait_for([&] { return status(uid) == "connected" || publisher.bus->has_error(); },
                             20000))
      << "status " << status(uid) << "; publisher: " << publisher.bus->error_text() << "\n"
      << server_.output();
  ASSERT_FALSE(publisher.bus->has_error()) << publisher.bus->error_text();

  Client viewer(viewer_launch(play_url));
  ASSERT_TRUE(viewer.pipeline);
  test::BufferCounter frames;
  gobj::Ref<GstElement> out = viewer.by_name("out");
  gobj::Ref<GstPad> out_pad = gobj::adopt(gst_element_get_static_pad(out.get(), "sink"));
  frames.attach(out_pad.get());
  viewer.play();
  ASSERT_TRUE(test::wait_for([&] { return frames.count() >= 30 || viewer.bus->has_error(); }, 30000))
      << "decoded frames: " << frames.count() << "; viewer: " << viewer.bus->error_text() << "\n"
      << server_.output();
  EXPECT_FALSE(viewer.bus->has_error()) << viewer.bus->error_text();
  EXPECT_GE(frames.count(), 30u);
  EXPECT_TRUE(test::wait_for([&] { return viewers(uid) == 1; }, 10000))
      << "liveViewers " << viewers(uid);
  EXPECT_EQ(status(uid), "connected");

  // The session resources the clients were given (Location), under the
  // URLs they posted to.
  auto resource = [](Client &c, const char *name) {
    gobj::Ref<GstElement> e = c.by_name(name);
    g_autofree gchar *url = nullptr;
    g_object_get(e.get(), "resource-url", &url, nullptr);
    return gobj::str_or(url);
  };
  const std::string publish_session = resource(publisher, "whip");
  const std::string play_session = resource(viewer, "whep");
  EXPECT_EQ(publish_session.rfind(publish_url + "/", 0), 0u) << publish_session;
  EXPECT_EQ(play_session.rfind(play_url + "/", 0), 0u) << play_session;

  // DELETE the input: both sessions end on the server; frames stop; the
  // input's URLs and both session resources are gone.
  HttpReply del = http("DELETE", server_.live_inputs_url() + "/" + uid, kToken);
  ASSERT_EQ(del.status, 200u) << del.body;
  // No frame for 2 s (well beyond the 30 fps frame interval): the viewer's
  // session no longer carries media.
  EXPECT_TRUE(test::wait_for(
      [&] { return frames.last_time() && g_get_monotonic_time() - frames.last_time() > 2000000; },
      20000))
      << "frames still arriving after DELETE";
  // (The clients themselves learn it only from ICE failing, which libnice
  // without consent freshness never reports: see the elements' liveness.)
  EXPECT_EQ(http("DELETE", publish_session).status, 404u);
  EXPECT_EQ(http("DELETE", play_session).status, 404u);
  EXPECT_EQ(http("GET", server_.live_inputs_url() + "/" + uid, kToken).status, 404u);
  EXPECT_EQ(http("POST", publish_url, "", "application/sdp", "v=0\r\n").status, 404u);
  EXPECT_EQ(http("POST", play_url, "", "application/sdp", "v=0\r\n").status, 404u);
}

TEST_F(ServerE2E, PublishingWorksAgainAfterSigkillAndRestart) {
  HttpReply created = http("POST", server_.live_inputs_url(), kToken, "application/json", "{}");
  ASSERT_EQ(created.status, 200u);
  const std::string uid = member(created.result(), nullptr, "uid");
  const std::string publish_url = member(created.result(), "webRTC", "url");
  const std::string path = publish_url.substr(server_.base_url.size());

  {
    Client publisher(publisher_launch(publish_url));
    publisher.play();
    ASSERT_TRUE(test::wait_for([&] { return status(uid) == "connected"; }, 20000))
        << publisher.bus->error_text();
    server_.kill();  // SIGKILL with a publisher live
  }

  ASSERT_TRUE(server_.start({"--api-token", kToken})) << server_.output();
  // The same input, the same publish path (the port may differ).
  HttpReply r;
  JsonObject *in = get_input(uid, &r);
  ASSERT_NE(in, nullptr) << r.body;
  const std::string again = member(in, "webRTC", "url");
  EXPECT_EQ(again.substr(server_.base_url.size()), path);
  EXPECT_NE(status(uid), "connected");  // nobody is live after the crash

  Client publisher(publisher_launch(again));
  publisher.play();
  EXPECT_TRUE(test::wait_for([&] { return status(uid) == "connected"; }, 20000))
      << "status " << status(uid) << "; publisher: " << publisher.bus->error_text();
}

TEST_F(ServerE2E, SessionsAreScopedToTheirInputAndPatchReachesTheElement) {
  HttpReply a = http("POST", server_.live_inputs_url(), kToken, "application/json", "{}");
  HttpReply b = http("POST", server_.live_inputs_url(), kToken, "application/json", "{}");
  ASSERT_EQ(a.status, 200u);
  ASSERT_EQ(b.status, 200u);
  const std::string uid = member(a.result(), nullptr, "uid");
  const std::string publish_a = member(a.result(), "webRTC", "url");
  const std::string publish_b = member(b.result(), "webRTC", "url");

  Client publisher(publisher_launch(publish_a));
  publisher.play();
  ASSERT_TRUE(test::wait_for([&] { return status(uid) == "connected"; }, 20000))
      << publisher.bus->error_text();
  gobj::Ref<GstElement> whip = publisher.by_name("whip");
  g_autofree gchar *resource = nullptr;
  g_object_get(whip.get(), "resource-url", &resource, nullptr);
  const std::string session_url = gobj::str_or(resource);
  const std::string session = session_url.substr(session_url.rfind('/') + 1);
  ASSERT_EQ(session_url, publish_a + "/" + session);

  // Trickle ICE reaches the publisher's element (and its ETag check).
  HttpReply trickle = http("PATCH", session_url, "", "application/trickle-ice-sdpfrag",
                           "a=end-of-candidates\r\n");
  EXPECT_EQ(trickle.status, 204u) << trickle.body;
  HttpReply stale = http("PATCH", session_url, "", "application/trickle-ice-sdpfrag",
                         "a=end-of-candidates\r\n", {{"If-Match", "\"not-the-etag\""}});
  EXPECT_EQ(stale.status, 412u) << stale.body;

  // Input B's secret does not reach A's session, even with B's pipeline up.
  http("POST", member(b.result(), "webRTCPlayback", "url"), "", "application/sdp", "v=0\r\n");
  EXPECT_EQ(http("DELETE", publish_b + "/" + session).status, 404u);
  EXPECT_EQ(http("PATCH", publish_b + "/" + session, "", "application/trickle-ice-sdpfrag",
                 "a=end-of-candidates\r\n").status, 404u);
  // Nor does the public uid.
  EXPECT_EQ(http("DELETE", server_.base_url + "/" + uid + "/webRTC/publish/" + session).status,
            404u);

  // A second publisher on A is refused while the first is live.
  Client second(publisher_launch(publish_a));
  second.play();
  ASSERT_TRUE(test::wait_for([&] { return second.bus->has_error(); }, 20000));
  EXPECT_NE(second.bus->error_text().find("409"), std::string::npos) << second.bus->error_text();
  EXPECT_EQ(status(uid), "connected");

  // The real owner ends it.
  EXPECT_EQ(http("DELETE", session_url).status, 200u);
  EXPECT_TRUE(test::wait_for([&] { return status(uid) == "client_disconnect"; }, 10000))
      << status(uid);
}

TEST_F(ServerE2E, DisablingAnInputEndsItsSessionsAndRefusesPublishers) {
  HttpReply created = http("POST", server_.live_inputs_url(), kToken, "application/json", "{}");
  ASSERT_EQ(created.status, 200u);
  const std::string uid = member(created.result(), nullptr, "uid");
  const std::string publish_url = member(created.result(), "webRTC", "url");
  Client publisher(publisher_launch(publish_url));
  publisher.play();
  ASSERT_TRUE(test::wait_for([&] { return status(uid) == "connected"; }, 20000))
      << publisher.bus->error_text();

  HttpReply off = http("PUT", server_.live_inputs_url() + "/" + uid, kToken, "application/json",
                       R"({"enabled":false})");
  ASSERT_EQ(off.status, 200u) << off.body;
  EXPECT_EQ(status(uid), "client_disconnect");
  HttpReply refused = http("POST", publish_url, "", "application/sdp", "v=0\r\n");
  EXPECT_EQ(refused.status, 403u);
  EXPECT_NE(refused.body.find("disabled"), std::string::npos) << refused.body;

  // Enabled again: a publisher is taken.
  ASSERT_EQ(http("PUT", server_.live_inputs_url() + "/" + uid, kToken, "application/json",
                 R"({"enabled":true})").status, 200u);
  Client again(publisher_launch(publish_url));
  again.play();
  EXPECT_TRUE(test::wait_for([&] { return status(uid) == "connected"; }, 20000))
      << again.bus->error_text();
}

// Decodes a recorded file to the end; returns the number of decoded video
// frames (0 if it cannot be played), whether it reached EOS cleanly and the
// duration its container declares (-1: none, i.e. not finished).
guint64 decode_file(const std::string &path, bool *clean_eos, gint64 *duration) {
  g_autofree gchar *quoted = g_strescape(path.c_str(), nullptr);
  Client player(std::string("filesrc location=\"") + quoted +
                "\" ! decodebin ! videoconvert ! video/x-raw ! fakesink name=out sync=false");
  if (!player.pipeline) return 0;
  test::BufferCounter frames;
  gobj::Ref<GstElement> out = player.by_name("out");
  gobj::Ref<GstPad> pad = gobj::adopt(gst_element_get_static_pad(out.get(), "sink"));
  frames.attach(pad.get());
  player.play();
  test::wait_for([&] { return player.bus->has_eos() || player.bus->has_error(); }, 20000);
  *clean_eos = player.bus->has_eos() && !player.bus->has_error();
  *duration = -1;
  gst_element_query_duration(player.pipeline.get(), GST_FORMAT_TIME, duration);
  return frames.count();
}

TEST(ServerRecording, TemplateWithARecordingBranchWritesAPlayableFile) {
  if (!test::our_elements({"whipserversrc", "whepserversink", "whipsink", "whepsrc"})) FAIL() << "the four elements missing or not from the whipwhep plugin";
  test::TempDir dir;
  const std::string conf = dir.file("recording.conf");
  const std::string conf_text =
      "[pipeline]\n"
      "template=whipserversrc name=src whepserversink name=sink src.video_0 ! tee name=t ! "
      "queue ! sink.video_0 t. ! queue ! matroskamux ! filesink "
      "location=\"@DATA_DIR@/recordings/@UID@.mkv\"\n";
  ASSERT_TRUE(g_file_set_contents(conf.c_str(), conf_text.c_str(), -1, nullptr));
  const std::string data = dir.path() + "/data";
  test::ServerProcess server(data);
  ASSERT_TRUE(server.start({"--config", conf, "--api-token", kToken})) << server.output();

  HttpReply created = http("POST", server.live_inputs_url(), kToken, "application/json", "{}");
  ASSERT_EQ(created.status, 200u);
  const std::string uid = member(created.result(), nullptr, "uid");
  const std::string item = server.live_inputs_url() + "/" + uid;
  auto status = [&] { return member(http("GET", item, kToken).result(), nullptr, "status"); };
  const std::string file = data + "/recordings/" + uid + ".mkv";
  auto file_size = [&] {
    GStatBuf st;
    return g_stat(file.c_str(), &st) == 0 ? static_cast<gint64>(st.st_size) : 0;
  };

  {
    Client publisher(publisher_launch(member(created.result(), "webRTC", "url")));
    publisher.play();
    ASSERT_TRUE(test::wait_for([&] { return status() == "connected"; }, 20000))
        << publisher.bus->error_text() << "\n" << server.output();
    // A few seconds of video on disk.
    ASSERT_TRUE(test::wait_for([&] { return file_size() > 50 * 1024; }, 20000))
        << "recording size " << file_size();
  }  // the publisher leaves (whipsink DELETEs its session)
  EXPECT_TRUE(test::wait_for([&] { return status() == "client_disconnect"; }, 20000))
      << status();

  // Playable already, while the input lives on waiting for the next publisher.
  bool eos = false;
  gint64 duration = -1;
  const guint64 while_live = decode_file(file, &eos, &duration);
  EXPECT_GE(while_live, 30u) << "frames decoded from " << file;


  // Deleting the input finishes the file (EOS through the muxer).
  ASSERT_EQ(http("DELETE", item, kToken).status, 200u);
  const guint64 finished = decode_file(file, &eos, &duration);
  EXPECT_TRUE(eos) << "the finished recording does not play to its end";
  EXPECT_GE(finished, while_live);
  EXPECT_GT(duration, 0) << "no duration in the finished file";
  // matroskamux writes its index (Cues) only when it gets EOS: proof that
  // stopping the input finished the file rather than cutting it off.
  gchar *bytes = nullptr;
  gsize length = 0;
  ASSERT_TRUE(g_file_get_contents(file.c_str(), &bytes, &length, nullptr));
  const std::string content(bytes, length);
  g_free(bytes);
  EXPECT_NE(content.find("\x1C\x53\xBB\x6B"), std::string::npos) << "no Cues: not finalised";
  EXPECT_EQ(server.terminate(), 0) << server.output();
}

TEST(ServerRecording, SigtermWithLiveSessionsExitsZeroAndFinishesTheRecording) {
  if (!test::our_elements({"whipserversrc", "whepserversink", "whipsink", "whepsrc"})) FAIL() << "the four elements missing or not from the whipwhep plugin";
  test::TempDir dir;
  const std::string conf = dir.file("recording.conf");
  ASSERT_TRUE(g_file_set_contents(
      conf.c_str(),
      "[pipeline]\ntemplate=whipserversrc name=src whepserversink name=sink src.video_0 ! tee "
      "name=t ! queue ! sink.video_0 t. ! queue ! matroskamux ! filesink "
      "location=\"@DATA_DIR@/recordings/@UID@.mkv\"\n",
      -1, nullptr));
  const std::string data = dir.path() + "/data";
  test::ServerProcess server(data);
  ASSERT_TRUE(server.start({"--config", conf, "--api-token", kToken})) << server.output();
  HttpReply created = http("POST", server.live_inputs_url(), kToken, "application/json", "{}");
  ASSERT_EQ(created.status, 200u);
  const std::string uid = member(created.result(), nullptr, "uid");
  const std::string item = server.live_inputs_url() + "/" + uid;

  Client publisher(publisher_launch(member(created.result(), "webRTC", "url")));
  publisher.play();
  ASSERT_TRUE(test::wait_for(
      [&] { return member(http("GET", item, kToken).result(), nullptr, "status") == "connected"; },
      20000))
      << publisher.bus->error_text();
  Client viewer(viewer_launch(member(created.result(), "webRTCPlayback", "url")));
  test::BufferCounter frames;
  gobj::Ref<GstElement> out = viewer.by_name("out");
  gobj::Ref<GstPad> pad = gobj::adopt(gst_element_get_static_pad(out.get(), "sink"));
  frames.attach(pad.get());
  viewer.play();
  ASSERT_TRUE(test::wait_for([&] { return frames.count() >= 30; }, 30000))
      << viewer.bus->error_text();

  // SIGTERM with a publisher and a viewer live: a clean exit, file finished.
  const gint64 start = g_get_monotonic_time();
  EXPECT_EQ(server.terminate(20000), 0) << server.output();
  EXPECT_LT(g_get_monotonic_time() - start, 10 * G_USEC_PER_SEC);
  EXPECT_NE(server.output().find("stopped"), std::string::npos) << server.output();
  gchar *bytes = nullptr;
  gsize length = 0;
  ASSERT_TRUE(g_file_get_contents((data + "/recordings/" + uid + ".mkv").c_str(), &bytes, &length,
                                  nullptr));
  const std::string content(bytes, length);
  g_free(bytes);
  EXPECT_NE(content.find("\x1C\x53\xBB\x6B"), std::string::npos) << "recording not finished";
  bool eos = false;
  gint64 duration = -1;
  EXPECT_GE(decode_file(data + "/recordings/" + uid + ".mkv", &eos, &duration), 30u);
  EXPECT_TRUE(eos);
}

}  // namespace
