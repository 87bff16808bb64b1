// whipwhep-server's live-input API, driven over HTTP against the real binary.
#include <gtest/gtest.h>
#include <json-glib/json-glib.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <regex>

#include "harness.h"
#include "server-process.h"

using test::http;
using test::HttpReply;

namespace {

constexpr const char *kToken = "test-token-0123456789abcdef";
const std::regex kHex32("^[0-9a-f]{32}$");

std::string str(JsonObject *o, const char *member) {
  if (!o || !json_object_has_member(o, member)) return "<absent>";
  JsonNode *n = json_object_get_member(o, member);
  return JSON_NODE_HOLDS_NULL(n) ? "<null>" : gobj::str_or(json_object_get_string_member(o, member));
}

std::string nested(JsonObject *o, const char *block, const char *member) {
  if (!o || !json_object_has_member(o, block)) return "<absent>";
  JsonNode *n = json_object_get_member(o, block);
  if (!JSON_NODE_HOLDS_OBJECT(n)) return "<not an object>";
  return str(json_node_get_object(n), member);
}

// The envelope every API response has, success or error.
void expect_envelope(const HttpReply &r, bool success) {
  ASSERT_EQ(r.content_type, "application/json") << r.body;
  JsonObject *o = r.object();
  ASSERT_NE(o, nullptr) << r.body;
  for (const char *m : {"result", "success", "errors", "messages"})
    EXPECT_TRUE(json_object_has_member(o, m)) << "missing " << m << " in " << r.body;
  EXPECT_EQ(json_object_get_boolean_member(o, "success"), success) << r.body;
  JsonArray *errors = json_object_get_array_member(o, "errors");
  ASSERT_NE(errors, nullptr);
  if (success) {
    EXPECT_EQ(json_array_get_length(errors), 0u);
  } else {
    ASSERT_EQ(json_array_get_length(errors), 1u) << r.body;
    JsonObject *e = json_array_get_object_element(errors, 0);
    EXPECT_TRUE(json_object_has_member(e, "code"));
    EXPECT_FALSE(str(e, "message").empty()) << "error without a message: " << r.body;
    EXPECT_TRUE(JSON_NODE_HOLDS_NULL(json_object_get_member(o, "result"))) << r.body;
  }
  EXPECT_EQ(json_array_get_length(json_object_get_array_member(o, "messages")), 0u);
}

std::string error_message(const HttpReply &r) {
  JsonObject *o = r.object();
  if (!o) return {};
  JsonArray *errors = json_object_get_array_member(o, "errors");
  if (!errors || json_array_get_length(errors) == 0) return {};
  return str(json_array_get_object_element(errors, 0), "message");
}

// The server refuses to start without the server elements its default
// template names; until they are built, tests that need a running server skip.
bool server_elements_available() {
  for (const char *name : {"whipserversrc", "whepserversink"}) {
    gobj::Ref<GstElementFactory> f = gobj::adopt(gst_element_factory_find(name));
    if (!f) return false;
  }
  return true;
}
#define SKIP_WITHOUT_ELEMENTS()                                       \
  do {                                                                \
    if (!server_elements_available()) {                               \
      GTEST_SKIP() << "whipserversrc/whepserversink are not built yet"; \
    }                                                                 \
  } while (0)

class ServerApi : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_ELEMENTS();
    ASSERT_TRUE(server_.start({"--api-token", kToken})) << server_.output();
  }
  void TearDown() override {
    if (server_.running()) {
      EXPECT_EQ(server_.terminate(), 0) << server_.output();
    }
  }

  HttpReply create(const std::string &body = R"({"meta":{"name":"test input"}})") {
    return http("POST", server_.live_inputs_url(), kToken, "application/json", body);
  }
  std::string item_url(const std::string &uid) { return server_.live_inputs_url() + "/" + uid; }

  test::TempDir dir_;
  test::ServerProcess server_{dir_.path()};
};

TEST_F(ServerApi, CreateReturnsCloudflareShapedLiveInput) {
  HttpReply r = create(R"({"meta":{"name":"cam 1"},"recording":{"mode":"automatic",
                          "timeoutSeconds":10},"deleteRecordingAfterDays":45,"defaultCreator":"x"})");
  ASSERT_EQ(r.status, 200u) << r.body;
  expect_envelope(r, true);
  JsonObject *in = r.result();
  ASSERT_NE(in, nullptr);
  const std::string uid = str(in, "uid");
  EXPECT_TRUE(std::regex_match(uid, kHex32)) << uid;
  EXPECT_TRUE(std::regex_match(str(in, "created"),
                               std::regex(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$)")));
  EXPECT_EQ(str(in, "created"), str(in, "modified"));
  EXPECT_EQ(nested(in, "meta", "name"), "cam 1");
  EXPECT_EQ(str(in, "status"), "<null>");  // never used: null, as Cloudflare's type says
  EXPECT_TRUE(json_object_get_boolean_member(in, "enabled"));
  EXPECT_FALSE(json_object_get_boolean_member(in, "preferLowLatency"));
  EXPECT_EQ(json_object_get_int_member(in, "deleteRecordingAfterDays"), 45);
  EXPECT_EQ(json_object_get_int_member(in, "liveViewers"), 0);
  JsonObject *rec = json_object_get_object_member(in, "recording");
  ASSERT_NE(rec, nullptr);
  EXPECT_EQ(str(rec, "mode"), "automatic");
  EXPECT_EQ(json_object_get_int_member(rec, "timeoutSeconds"), 10);
  EXPECT_FALSE(json_object_get_boolean_member(rec, "requireSignedURLs"));
  EXPECT_TRUE(JSON_NODE_HOLDS_NULL(json_object_get_member(rec, "allowedOrigins")));

  // Publishing needs a separate 128-bit secret; playback is by uid.
  const std::string publish = nested(in, "webRTC", "url");
  const std::string play = nested(in, "webRTCPlayback", "url");
  std::smatch m;
  ASSERT_TRUE(std::regex_match(publish, m, std::regex("^" + server_.base_url +
                                                      "/([0-9a-f]{32})/webRTC/publish$")))
      << publish;
  EXPECT_NE(m[1].str(), uid);
  EXPECT_EQ(play, server_.base_url + "/" + uid + "/webRTC/play");
  for (const char *unsupported : {"rtmps", "srt"})
    EXPECT_TRUE(!json_object_has_member(in, unsupported) ||
                JSON_NODE_HOLDS_NULL(json_object_get_member(in, unsupported)));
}

TEST_F(ServerApi, ListIsAnObjectWithLiveInputsRangeTotal) {
  ASSERT_EQ(create(R"({"meta":{"name":"a"}})").status, 200u);
  ASSERT_EQ(create(R"({"meta":{"name":"b"}})").status, 200u);
  HttpReply r = http("GET", server_.live_inputs_url(), kToken);
  ASSERT_EQ(r.status, 200u) << r.body;
  expect_envelope(r, true);
  JsonObject *res = r.result();
  ASSERT_NE(res, nullptr) << "list result must be an object: " << r.body;
  JsonArray *items = json_object_get_array_member(res, "liveInputs");
  ASSERT_NE(items, nullptr);
  ASSERT_EQ(json_array_get_length(items), 2u);
  EXPECT_EQ(json_object_get_int_member(res, "range"), 2);
  EXPECT_EQ(json_object_get_int_member(res, "total"), 2);
  JsonObject *first = json_array_get_object_element(items, 0);
  for (const char *f : {"uid", "created", "modified", "meta", "enabled", "deleteRecordingAfterDays"})
    EXPECT_TRUE(json_object_has_member(first, f)) << f;
  EXPECT_EQ(nested(first, "meta", "name"), "a");
}

TEST_F(ServerApi, GetUpdateDeleteRoundTrip) {
  HttpReply c = create();
  const std::string uid = str(c.result(), "uid");
  const std::string publish = nested(c.result(), "webRTC", "url");

  HttpReply g = http("GET", item_url(uid), kToken);
  ASSERT_EQ(g.status, 200u);
  expect_envelope(g, true);
  EXPECT_EQ(str(g.result(), "uid"), uid);
  EXPECT_EQ(nested(g.result(), "webRTC", "url"), publish);

  HttpReply u = http("PUT", item_url(uid), kToken, "application/json",
                     R"({"meta":{"name":"renamed"},"enabled":false,
                         "recording":{"allowedOrigins":["https://a.example"]}})");
  ASSERT_EQ(u.status, 200u) << u.body;
  expect_envelope(u, true);
  EXPECT_EQ(nested(u.result(), "meta", "name"), "renamed");
  EXPECT_FALSE(json_object_get_boolean_member(u.result(), "enabled"));
  EXPECT_GT(str(u.result(), "modified"), str(c.result(), "modified"));
  EXPECT_EQ(str(u.result(), "created"), str(c.result(), "created"));
  EXPECT_EQ(nested(u.result(), "webRTC", "url"), publish);  // the secret does not change
  JsonArray *origins = json_object_get_array_member(
      json_object_get_object_member(u.result(), "recording"), "allowedOrigins");
  ASSERT_NE(origins, nullptr);
  EXPECT_STREQ(json_array_get_string_element(origins, 0), "https://a.example");

  HttpReply d = http("DELETE", item_url(uid), kToken);
  ASSERT_EQ(d.status, 200u) << d.body;
  expect_envelope(d, true);
  EXPECT_EQ(http("GET", item_url(uid), kToken).status, 404u);
  EXPECT_EQ(http("DELETE", item_url(uid), kToken).status, 404u);
  // Its publish URL is gone with it.
  EXPECT_EQ(http("POST", publish, "", "application/sdp", "v=0\r\n").status, 404u);
}

TEST_F(ServerApi, MissingOrWrongTokenIs401OnEveryRouteAndChangesNothing) {
  const std::string uid = str(create().result(), "uid");
  struct Case {
    const char *method;
    std::string url;
  };
  const std::vector<Case> cases = {{"GET", server_.live_inputs_url()},
                                   {"POST", server_.live_inputs_url()},
                                   {"GET", item_url(uid)},
                                   {"PUT", item_url(uid)},
                                   {"DELETE", item_url(uid)}};
  for (const auto &c : cases) {
    for (const std::string &token : {std::string(), std::string("wrong-token"), kToken + std::string("x")}) {
      HttpReply r = http(c.method, c.url, token, "application/json", R"({"meta":{"name":"x"}})");
      EXPECT_EQ(r.status, 401u) << c.method << " " << c.url << " token=" << token;
      EXPECT_EQ(r.header("www-authenticate").rfind("Bearer", 0), 0u) << r.header("www-authenticate");
      expect_envelope(r, false);
    }
  }
  HttpReply list = http("GET", server_.live_inputs_url(), kToken);
  EXPECT_EQ(json_object_get_int_member(list.result(), "total"), 1);
  EXPECT_EQ(nested(http("GET", item_url(uid), kToken).result(), "meta", "name"), "test input");
}

TEST_F(ServerApi, UnknownOrMalformedUidIs404) {
  for (const std::string &uid : std::vector<std::string>{"0123456789abcdef0123456789abcdef", "nothex", "..%2F..%2Fetc",
                                "0123456789ABCDEF0123456789ABCDEF"}) {
    HttpReply r = http("GET", item_url(uid), kToken);
    EXPECT_EQ(r.status, 404u) << uid;
    expect_envelope(r, false);
  }
  HttpReply other_account = http("GET", server_.base_url + "/client/v4/accounts/someoneelse/stream/live_inputs", kToken);
  EXPECT_EQ(other_account.status, 404u);
  expect_envelope(other_account, false);
}

TEST_F(ServerApi, WrongMethodIs405WithAllow) {
  HttpReply r = http("PATCH", server_.live_inputs_url(), kToken, "application/json", "{}");
  EXPECT_EQ(r.status, 405u);
  EXPECT_EQ(r.header("allow"), "GET, POST, OPTIONS");
  expect_envelope(r, false);
  const std::string uid = str(create().result(), "uid");
  r = http("POST", item_url(uid), kToken, "application/json", "{}");
  EXPECT_EQ(r.status, 405u);
  EXPECT_EQ(r.header("allow"), "GET, PUT, DELETE, OPTIONS");
  expect_envelope(r, false);
}

TEST_F(ServerApi, WrongContentTypeIs415) {
  HttpReply r = http("POST", server_.live_inputs_url(), kToken, "text/plain", R"({"meta":{}})");
  EXPECT_EQ(r.status, 415u);
  expect_envelope(r, false);
  EXPECT_NE(error_message(r).find("application/json"), std::string::npos) << error_message(r);
  EXPECT_EQ(json_object_get_int_member(http("GET", server_.live_inputs_url(), kToken).result(), "total"), 0);
}

TEST_F(ServerApi, MalformedJsonIs400WithTheParseError) {
  HttpReply r = create(R"({"meta": {"name": )");
  EXPECT_EQ(r.status, 400u);
  expect_envelope(r, false);
  EXPECT_NE(error_message(r).find("malformed JSON"), std::string::npos) << error_message(r);
}

TEST_F(ServerApi, InvalidBodiesAre400WithAReason) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"[1,2]", "must be a JSON object"},
      {R"({"meta":"x"})", "meta must be a JSON object"},
      {R"({"enabled":"yes"})", "enabled must be true or false"},
      {R"({"recording":{"mode":"sometimes"}})", "recording.mode"},
      {R"({"recording":{"timeoutSeconds":-1}})", "timeoutSeconds"},
      {R"({"deleteRecordingAfterDays":1.5})", "deleteRecordingAfterDays"},
      {std::string(200, '[') + std::string(200, ']'), "deeper"},
      {"{\"meta\":{\"name\":\"\xff\xfe\"}}", "UTF-8"},
      {R"({"meta":{"blob":")" + std::string(20000, 'x') + R"("}})", "limit"},
  };
  for (const auto &c : cases) {
    HttpReply r = create(c.first);
    EXPECT_EQ(r.status, 400u) << c.first.substr(0, 60);
    expect_envelope(r, false);
    EXPECT_NE(error_message(r).find(c.second), std::string::npos)
        << "'" << error_message(r) << "' should mention '" << c.second << "'";
  }
  EXPECT_EQ(json_object_get_int_member(http("GET", server_.live_inputs_url(), kToken).result(), "total"), 0);
}

TEST_F(ServerApi, BodyOverTheLimitIs413BeforeBeingRead) {
  const std::string big = R"({"meta":{"x":")" + std::string(70 * 1024, 'a') + R"("}})";
  HttpReply r = create(big);
  EXPECT_EQ(r.status, 413u);
  expect_envelope(r, false);

  // Declared length far beyond the limit, body never sent: the answer comes
  // from the headers alone.
  const std::string raw = test::raw_http(
      server_.base_url, "POST " + server_.live_inputs_url().substr(server_.base_url.size()) +
                            " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + kToken +
                            "\r\nContent-Type: application/json\r\nContent-Length: "
                            "1000000000\r\nExpect: 100-continue\r\n\r\n");
  EXPECT_EQ(raw.rfind("HTTP/1.1 413", 0), 0u) << raw;

  // Chunked, no length: cut off once past the limit.
  std::string chunked = "POST " + server_.live_inputs_url().substr(server_.base_url.size()) +
                        " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + kToken +
                        "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 20; i++) chunked += "1000\r\n" + std::string(4096, 'a') + "\r\n";
  chunked += "0\r\n\r\n";
  const std::string raw2 = test::raw_http(server_.base_url, chunked);
  EXPECT_EQ(raw2.rfind("HTTP/1.1 413", 0), 0u) << raw2.substr(0, 200);

  // And the server still serves.
  EXPECT_EQ(create().status, 200u);
}

TEST_F(ServerApi, CorsPreflightAndExposedHeaders) {
  HttpReply r = http("OPTIONS", server_.live_inputs_url(), "", "", "",
                     {{"Origin", "https://app.example"},
                      {"Access-Control-Request-Method", "POST"}});
  EXPECT_EQ(r.status, 204u);
  EXPECT_EQ(r.header("access-control-allow-origin"), "*");
  EXPECT_NE(r.header("access-control-allow-headers").find("Authorization"), std::string::npos);
  EXPECT_NE(r.header("access-control-allow-methods").find("POST"), std::string::npos);
  HttpReply g = http("GET", server_.live_inputs_url(), kToken);
  for (const char *h : {"Location", "Link", "ETag"})
    EXPECT_NE(g.header("access-control-expose-headers").find(h), std::string::npos) << h;
}

TEST_F(ServerApi, MediaRoutesRejectUnknownKeysAndBadRequests) {
  HttpReply c = create();
  const std::string uid = str(c.result(), "uid");
  const std::string publish = nested(c.result(), "webRTC", "url");
  const std::string play = nested(c.result(), "webRTCPlayback", "url");
  // The uid is public: it must not open the publish endpoint.
  EXPECT_EQ(http("POST", server_.base_url + "/" + uid + "/webRTC/publish", "", "application/sdp",
                 "v=0\r\n").status, 404u);
  EXPECT_EQ(http("POST", server_.base_url + "/0123456789abcdef0123456789abcdef/webRTC/play", "",
                 "application/sdp", "v=0\r\n").status, 404u);
  HttpReply t = http("POST", publish, "", "text/plain", "v=0\r\n");
  EXPECT_EQ(t.status, 415u);
  EXPECT_FALSE(t.body.empty());
  HttpReply m = http("GET", play);
  EXPECT_EQ(m.status, 405u);
  EXPECT_EQ(m.header("allow"), "POST, OPTIONS");
  EXPECT_EQ(http("DELETE", publish + "/0123456789abcdef0123456789abcdef").status, 404u);
  EXPECT_EQ(http("POST", publish, "", "application/sdp", std::string(70 * 1024, 'a')).status, 413u);
  HttpReply o = http("OPTIONS", publish);
  EXPECT_EQ(o.status, 204u);
  EXPECT_FALSE(o.header("protocol-version").empty());
  EXPECT_NE(o.header("access-control-expose-headers").find("Location"), std::string::npos);
  EXPECT_EQ(http("GET", server_.base_url + "/nothing/here").status, 404u);
}

// --- process-level behaviour ------------------------------------------------

TEST(ServerProcess, ConfiguredLimitsOriginsAndIceServers) {
  SKIP_WITHOUT_ELEMENTS();
  test::TempDir dir;
  const std::string conf = dir.file("limits.conf");
  ASSERT_TRUE(g_file_set_contents(
      conf.c_str(),
      "[limits]\nmax-live-inputs=2\n"
      "[cors]\nallowed-origins=https://app.example;https://other.example\n"
      "[ice]\nice-servers=stun:stun.example.invalid:3478;"
      "turn:alice:s3cret@turn.example.invalid:3478?transport=udp\n",
      -1, nullptr));
  test::ServerProcess server(dir.path() + "/data");
  ASSERT_TRUE(server.start({"--config", conf, "--api-token", kToken})) << server.output();

  // Inputs: the third is refused with 429 + Retry-After, nothing stored.
  HttpReply first = http("POST", server.live_inputs_url(), kToken, "application/json", "{}");
  ASSERT_EQ(first.status, 200u);
  ASSERT_EQ(http("POST", server.live_inputs_url(), kToken, "application/json", "{}").status, 200u);
  HttpReply third = http("POST", server.live_inputs_url(), kToken, "application/json", "{}");
  EXPECT_EQ(third.status, 429u);
  EXPECT_FALSE(third.header("retry-after").empty());
  expect_envelope(third, false);
  EXPECT_EQ(json_object_get_int_member(http("GET", server.live_inputs_url(), kToken).result(), "total"), 2);

  // CORS: a listed origin is echoed, another gets no Allow-Origin.
  HttpReply listed = http("GET", server.live_inputs_url(), kToken, "", "",
                          {{"Origin", "https://other.example"}});
  EXPECT_EQ(listed.header("access-control-allow-origin"), "https://other.example");
  HttpReply unlisted = http("GET", server.live_inputs_url(), kToken, "", "",
                            {{"Origin", "https://evil.example"}});
  EXPECT_EQ(unlisted.header("access-control-allow-origin"), "");

  // ICE servers: one Link line each on the WHIP endpoint's OPTIONS, TURN
  // with its credentials as quoted parameters.
  const std::string publish = nested(first.result(), "webRTC", "url");
  HttpReply o = http("OPTIONS", publish);
  EXPECT_EQ(o.status, 204u);
  const std::string links = o.header("link");
  EXPECT_NE(links.find("<stun:stun.example.invalid:3478>"), std::string::npos) << links;
  EXPECT_NE(links.find("rel=\"ice-server\""), std::string::npos) << links;
  EXPECT_NE(links.find("turn:turn.example.invalid:3478"), std::string::npos) << links;
  EXPECT_NE(links.find("username=\"alice\""), std::string::npos) << links;
  EXPECT_NE(links.find("credential=\"s3cret\""), std::string::npos) << links;
  EXPECT_EQ(std::count(links.begin(), links.end(), '\n'), 1) << "one Link line per server";
  EXPECT_EQ(server.terminate(), 0);
}

TEST(ServerProcess, SlowClientIsDroppedWithoutBlockingOthers) {
  SKIP_WITHOUT_ELEMENTS();
  test::TempDir dir;
  const std::string conf = dir.file("slow.conf");
  ASSERT_TRUE(g_file_set_contents(conf.c_str(), "[limits]\nrequest-timeout-seconds=2\n", -1,
                                  nullptr));
  test::ServerProcess server(dir.path() + "/data");
  ASSERT_TRUE(server.start({"--config", conf, "--api-token", kToken})) << server.output();

  g_autoptr(GUri) uri = g_uri_parse(server.base_url.c_str(), G_URI_FLAGS_NONE, nullptr);
  g_autoptr(GSocketClient) client = g_socket_client_new();
  g_autoptr(GSocketConnection) slow = g_socket_client_connect_to_host(
      client, g_uri_get_host(uri), static_cast<guint16>(g_uri_get_port(uri)), nullptr, nullptr);
  ASSERT_NE(slow, nullptr);
  GOutputStream *out = g_io_stream_get_output_stream(G_IO_STREAM(slow));
  // Half a request line, then nothing more, like a client sending one byte
  // now and then.
  ASSERT_TRUE(g_output_stream_write_all(out, "GET /client/v4", 14, nullptr, nullptr, nullptr));
  const gint64 start = g_get_monotonic_time();

  // Others are served meanwhile.
  EXPECT_EQ(http("GET", server.live_inputs_url(), kToken).status, 200u);

  // The slow connection is closed by the server: a read returns EOF (or an
  // error), well within the timeout plus slack.
  GSocket *sock = g_socket_connection_get_socket(slow);
  g_socket_set_timeout(sock, 10);
  char buf[256];
  gssize n = g_socket_receive(sock, buf, sizeof buf, nullptr, nullptr);
  const gint64 elapsed_ms = (g_get_monotonic_time() - start) / 1000;
  EXPECT_LE(n, 0) << "the server answered a request it never fully got";
  EXPECT_GE(elapsed_ms, 1500);
  EXPECT_LT(elapsed_ms, 8000) << "a slow client held its connection too long";
  EXPECT_EQ(http("GET", server.live_inputs_url(), kToken).status, 200u);
  EXPECT_EQ(server.terminate(), 0);
}

TEST(ServerProcess, GeneratesStoresAndPrintsATokenOnFirstStartOnly) {
  SKIP_WITHOUT_ELEMENTS();
  test::TempDir dir;
  test::ServerProcess server(dir.path());
  ASSERT_TRUE(server.start()) << server.output();
  gchar *contents = nullptr;
  ASSERT_TRUE(g_file_get_contents(dir.file("api-token").c_str(), &contents, nullptr, nullptr));
  std::string token = g_strstrip(contents);
  g_free(contents);
  EXPECT_GE(token.size(), 32u);
  EXPECT_NE(server.output().find(token), std::string::npos) << "token printed once";
  EXPECT_NE(server.output().find("curl "), std::string::npos);
  EXPECT_NE(server.output().find(server.live_inputs_url()), std::string::npos);
  EXPECT_NE(server.output().find("gst-launch-1.0"), std::string::npos);
  EXPECT_NE(server.output().find(server.account_id), std::string::npos);
  EXPECT_EQ(http("POST", server.live_inputs_url(), token, "application/json", "{}").status, 200u);
  EXPECT_EQ(server.terminate(), 0);

  ASSERT_TRUE(server.start()) << server.output();
  EXPECT_EQ(server.output().find(token), std::string::npos) << "printed only on first start";
  EXPECT_EQ(http("GET", server.live_inputs_url(), token).status, 200u);
  EXPECT_EQ(server.terminate(), 0);
}

TEST(ServerProcess, TokenFromEnvironmentIsUsed) {
  SKIP_WITHOUT_ELEMENTS();
  test::TempDir dir;
  test::ServerProcess server(dir.path());
  ASSERT_TRUE(server.start({}, {{"WHIPWHEP_API_TOKEN", "env-token-123"}})) << server.output();
  EXPECT_EQ(http("GET", server.live_inputs_url(), "env-token-123").status, 200u);
  EXPECT_EQ(http("GET", server.live_inputs_url(), "other").status, 401u);
  EXPECT_FALSE(g_file_test(dir.file("api-token").c_str(), G_FILE_TEST_EXISTS));
  EXPECT_EQ(server.output().find("env-token-123"), std::string::npos) << "never printed";
  EXPECT_EQ(server.terminate(), 0);
}

TEST(ServerProcess, LiveInputsSurviveRestartAndSigkill) {
  SKIP_WITHOUT_ELEMENTS();
  test::TempDir dir;
  test::ServerProcess server(dir.path());
  ASSERT_TRUE(server.start({"--api-token", kToken})) << server.output();
  const std::string account = server.account_id;
  std::vector<std::string> bodies;
  for (int i = 0; i < 5; i++) {
    HttpReply r = http("POST", server.live_inputs_url(), kToken, "application/json",
                       R"({"meta":{"name":"n)" + std::to_string(i) + R"("}})");
    ASSERT_EQ(r.status, 200u);
    bodies.push_back(str(r.result(), "uid") + " " + nested(r.result(), "webRTC", "url"));
  }
  auto snapshot = [&](test::ServerProcess &s) {
    std::vector<std::string> out;
    HttpReply list = http("GET", s.live_inputs_url(), kToken);
    JsonArray *items = json_object_get_array_member(list.result(), "liveInputs");
    for (guint i = 0; items && i < json_array_get_length(items); i++) {
      const std::string uid = str(json_array_get_object_element(items, i), "uid");
      HttpReply one = http("GET", s.live_inputs_url() + "/" + uid, kToken);
      // URLs are compared by path: a restart may bind another port.
      std::string url = nested(one.result(), "webRTC", "url");
      out.push_back(uid + " " + url.substr(url.find('/', strlen("http://"))));
    }
    return out;
  };
  for (auto &b : bodies) b = b.substr(0, 33) + b.substr(b.find('/', 33 + strlen("http://")));
  EXPECT_EQ(snapshot(server), bodies);

  EXPECT_EQ(server.terminate(), 0);
  ASSERT_TRUE(server.start({"--api-token", kToken})) << server.output();
  EXPECT_EQ(server.account_id, account);
  EXPECT_EQ(snapshot(server), bodies);

  // SIGKILL right after a successful create: that input must be there too.
  HttpReply last = http("POST", server.live_inputs_url(), kToken, "application/json", "{}");
  ASSERT_EQ(last.status, 200u);
  const std::string url = nested(last.result(), "webRTC", "url");
  bodies.push_back(str(last.result(), "uid") + " " + url.substr(url.find('/', strlen("http://"))));
  server.kill();
  ASSERT_TRUE(server.start({"--api-token", kToken})) << server.output();
  EXPECT_EQ(snapshot(server), bodies);
  EXPECT_EQ(server.terminate(), 0);
}

TEST(ServerProcess, SigkillDuringCreatesLosesNoAcknowledgedInput) {
  SKIP_WITHOUT_ELEMENTS();
  test::TempDir dir;
  test::ServerProcess server(dir.path());
  ASSERT_TRUE(server.start({"--api-token", kToken})) << server.output();
  // Creators on other threads; the server is SIGKILLed while they run.
  std::mutex lock;
  std::vector<std::string> acknowledged;
  std::atomic<bool> stop{false};
  const std::string url = server.live_inputs_url();
  std::vector<std::thread> creators;
  for (int t = 0; t < 4; t++)
    creators.emplace_back([&] {
      while (!stop) {
        HttpReply r = http("POST", url, kToken, "application/json", R"({"meta":{"name":"k"}})");
        if (r.status != 200) continue;  // cut off by the kill: not acknowledged
        std::lock_guard<std::mutex> l(lock);
        acknowledged.push_back(str(r.result(), "uid"));
      }
    });
  ASSERT_TRUE(test::wait_for(
      [&] {
        std::lock_guard<std::mutex> l(lock);
        return acknowledged.size() >= 40;
      },
      30000));
  server.kill();
  stop = true;
  for (auto &t : creators) t.join();

  ASSERT_TRUE(server.start({"--api-token", kToken})) << server.output();
  HttpReply list = http("GET", server.live_inputs_url(), kToken);
  ASSERT_EQ(list.status, 200u);
  std::set<std::string> present;
  JsonArray *items = json_object_get_array_member(list.result(), "liveInputs");
  for (guint i = 0; i < json_array_get_length(items); i++)
    present.insert(str(json_array_get_object_element(items, i), "uid"));
  for (const auto &uid : acknowledged) EXPECT_EQ(present.count(uid), 1u) << uid << " was lost";
  // Every stored input is whole: it reads back with its URLs.
  for (const auto &uid : present) {
    HttpReply one = http("GET", server.live_inputs_url() + "/" + uid, kToken);
    EXPECT_EQ(one.status, 200u);
    EXPECT_NE(nested(one.result(), "webRTC", "url"), "<absent>");
  }
  EXPECT_EQ(server.terminate(), 0);
}

TEST(ServerProcess, ConcurrentApiClientsLoseNoUpdate) {
  SKIP_WITHOUT_ELEMENTS();
  test::TempDir dir;
  test::ServerProcess server(dir.path());
  ASSERT_TRUE(server.start({"--api-token", kToken})) << server.output();
  const std::string url = server.live_inputs_url();
  std::atomic<int> server_errors{0}, failures{0};
  std::mutex lock;
  std::set<std::string> kept;
  std::vector<std::thread> clients;
  // Each client creates, renames (and checks its own rename), deletes every
  // other input: 50 at once, 10 rounds each.
  for (int c = 0; c < 50; c++)
    clients.emplace_back([&, c] {
      for (int round = 0; round < 10; round++) {
        HttpReply r = http("POST", url, kToken, "application/json", "{}");
        if (r.status >= 500) server_errors++;
        if (r.status != 200) {
          failures++;
          ADD_FAILURE() << "create: " << r.status << " " << r.error << r.body;
          continue;
        }
        const std::string uid = str(r.result(), "uid");
        const std::string name = "c" + std::to_string(c) + "r" + std::to_string(round);
        HttpReply u = http("PUT", url + "/" + uid, kToken, "application/json",
                           R"({"meta":{"name":")" + name + R"("}})");
        if (u.status >= 500) server_errors++;
        HttpReply g = http("GET", url + "/" + uid, kToken);
        if (nested(g.result(), "meta", "name") != name) {
          failures++;
          ADD_FAILURE() << "lost update: " << g.status << " " << g.body;
        }
        if (round % 2) {
          if (http("DELETE", url + "/" + uid, kToken).status != 200) failures++;
        } else {
          std::lock_guard<std::mutex> l(lock);
          kept.insert(uid);
        }
      }
    });
  for (auto &t : clients) t.join();
  EXPECT_EQ(server_errors.load(), 0);
  EXPECT_EQ(failures.load(), 0);
  HttpReply list = http("GET", url, kToken);
  EXPECT_EQ(json_object_get_int_member(list.result(), "total"), static_cast<gint64>(kept.size()));
  EXPECT_EQ(kept.size(), 250u);
  EXPECT_EQ(server.terminate(), 0);
}

TEST(ServerProcess, InvalidPipelineTemplateIsRefusedAtStartWithTheParseError) {
  test::TempDir dir;
  const std::string conf = dir.file("bad.conf");
  ASSERT_TRUE(g_file_set_contents(conf.c_str(),
                                  "[pipeline]\ntemplate=whipserversrc name=src ! ! nosuchelement\n",
                                  -1, nullptr));
  test::ServerProcess server(dir.path() + "/data");
  EXPECT_FALSE(server.start({"--config", conf}));
  EXPECT_EQ(server.wait_exit(), 1);
  EXPECT_NE(server.output().find("invalid pipeline template"), std::string::npos)
      << server.output();

  ASSERT_TRUE(g_file_set_contents(conf.c_str(), "[pipeline]\ntemplate=fakesrc ! fakesink\n", -1,
                                  nullptr));
  EXPECT_FALSE(server.start({"--config", conf}));
  EXPECT_EQ(server.wait_exit(), 1);
  EXPECT_NE(server.output().find("whipserversrc named \"src\""), std::string::npos)
      << server.output();
}

TEST(ServerProcess, HelpAndVersion) {
  test::TempDir dir;
  test::ServerProcess server(dir.path());
  EXPECT_FALSE(server.start({"--version"}));
  EXPECT_EQ(server.wait_exit(), 0);
  EXPECT_NE(server.output().find("whipwhep-server 0."), std::string::npos) << server.output();
  EXPECT_FALSE(server.start({"--help"}));
  EXPECT_EQ(server.wait_exit(), 0);
  for (const char *flag : {"--config", "--listen", "--public-url", "--data-dir", "--account-id",
                           "--api-token", "--ice-addresses", "--version"})
    EXPECT_NE(server.output().find(flag), std::string::npos) << flag;
}

}  // namespace
