// whipwhep-server's live-input API, driven over HTTP against the real binary.
#include <gtest/gtest.h>
#include <json-glib/json-glib.h>
#include <regex>

#include "api-helpers.h"
#include "harness.h"
#include "server-process.h"

using namespace test;

namespace {

class ServerApi : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_SERVER_ELEMENTS();
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
  EXPECT_TRUE(std::regex_match(uid, std::regex("^[0-9a-f]{32}$"))) << uid;
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

}  // namespace
