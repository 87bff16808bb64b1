// Hostile input against the real whipwhep-server: bad SDP offers on the WHIP
// and WHEP endpoints, wrong methods, JSON bombs, encoding tricks in paths,
// oversized headers, bad credentials, and what the server writes to its
// logs. Each case asserts the exact status and a reason; afterwards the
// server still carries a live stream from a real publisher to a viewer.
// Loopback only: the server and the clients gather ICE on 127.0.0.1.
#include <gtest/gtest.h>
#include <json-glib/json-glib.h>

#include <regex>
#include <set>
#include <vector>

#include "api-helpers.h"
#include "harness.h"
#include "client-pipeline.h"
#include "server-process.h"

using namespace test;

namespace {


std::string publisher_launch(const std::string &url) {
  return "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,"
         "framerate=15/1 ! whipsink name=whip ice-addresses=127.0.0.1 whip-endpoint=" + url;
}

std::string viewer_launch(const std::string &url) {
  return "whepsrc name=whep ice-addresses=127.0.0.1 whep-endpoint=" + url +
         " ! decodebin ! videoconvert ! video/x-raw ! fakesink name=out sync=false";
}

// A WebRTC offer as browsers send it: one video m-line, BUNDLE, rtcp-mux,
// ICE credentials, a SHA-256 fingerprint; `direction` sendonly (WHIP) or
// recvonly (WHEP). Each bad case below changes one thing about it.
std::string offer(const char *direction, int mlines = 1, bool duplicate_mids = false) {
  std::string bundle = "a=group:BUNDLE";
  for (int i = 0; i < mlines; i++) bundle += " " + std::to_string(duplicate_mids ? 0 : i);
  std::string s = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
                  bundle + "\r\na=ice-options:trickle\r\n";
  for (int i = 0; i < mlines; i++) {
    s += "m=video 9 UDP/TLS/RTP/SAVPF 96 97 98\r\n"
         "c=IN IP4 0.0.0.0\r\n"
         "a=rtcp:9 IN IP4 0.0.0.0\r\n"
         "a=ice-ufrag:Vh7q\r\n"
         "a=ice-pwd:9xKq3cYbM2uQ0pTnR5wLfG8a\r\n"
         "a=fingerprint:sha-256 "
         "D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:"
         "AF:52:CE:E6:0F\r\n"
         "a=setup:actpass\r\n"
         "a=mid:" + std::to_string(duplicate_mids ? 0 : i) + "\r\n";
    if (i > 0) s += "a=bundle-only\r\n";
    s += std::string("a=") + direction + "\r\n" +
         "a=rtcp-mux\r\n"
         "a=rtpmap:96 VP8/90000\r\n"
         "a=rtcp-fb:96 nack\r\n"
         "a=rtcp-fb:96 nack pli\r\n"
         "a=rtpmap:97 H264/90000\r\n"
         "a=fmtp:97 packetization-mode=1;profile-level-id=42e01f;level-asymmetry-allowed=1\r\n"
         "a=rtpmap:98 VP9/90000\r\n";
  }
  return s;
}

// Every line starting with `prefix` removed.
std::string without(const std::string &sdp, const std::string &prefix) {
  std::string out;
  size_t pos = 0;
  while (pos < sdp.size()) {
    size_t end = sdp.find("\r\n", pos);
    end = end == std::string::npos ? sdp.size() : end + 2;
    const std::string line = sdp.substr(pos, end - pos);
    if (line.rfind(prefix, 0) != 0) out += line;
    pos = end;
  }
  return out;
}

std::string replace_all(std::string s, const std::string &from, const std::string &to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
    s.replace(p, from.size(), to);
  return s;
}

struct BadOffer {
  std::string name;
  std::string body;
  guint status;
};

std::vector<BadOffer> bad_offers(const char *direction) {
  const std::string good = offer(direction);
  std::string garbage;
  for (int i = 0; i < 4096; i++) garbage += static_cast<char>((i * 2654435761u) >> 13);
  std::string huge = good;
  while (huge.size() < 1024 * 1024) huge += "a=x-filler:0123456789abcdef0123456789abcdef\r\n";
  const std::string data_only =
      "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
      "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n"
      "a=ice-ufrag:Vh7q\r\na=ice-pwd:9xKq3cYbM2uQ0pTnR5wLfG8a\r\n"
      "a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:"
      "FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F\r\na=setup:actpass\r\na=mid:0\r\n"
      "a=sctp-port:5000\r\na=max-message-size:262144\r\n";
  return {
      {"empty body", "", 400},
      // Cut before its first m-line: no media can be parsed.
      {"truncated", good.substr(0, good.find("m=video") - 10), 400},
      {"binary garbage", garbage, 400},
      {"1 MiB of a= lines", huge, 413},
      {"no media sections", good.substr(0, good.find("m=video")), 400},
      {"only a data channel", data_only, 422},
      {"duplicate mids", offer(direction, 2, true), 400},
      {"missing ICE ufrag", without(good, "a=ice-ufrag:"), 400},
      {"missing ICE pwd", without(good, "a=ice-pwd:"), 400},
      {"missing fingerprint", without(good, "a=fingerprint:"), 400},
      {"md5 fingerprint",
       replace_all(good, "a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:"
                         "C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F",
                   "a=fingerprint:md5 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24"),
       422},
      {"50 m-lines", offer(direction, 50), 422},
  };
}

std::string first_line(const std::string &s) { return s.substr(0, s.find('\n')); }

class ServerBadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_SERVER_ELEMENTS();
    if (!test::our_elements({"whipsink", "whepsrc"})) FAIL() << "whipsink/whepsrc missing or not from the whipwhep plugin";
    ASSERT_TRUE(server_.start({"--api-token", kToken}, extra_env_)) << server_.output();
  }
  void TearDown() override {
    if (server_.running()) {
      EXPECT_EQ(server_.terminate(), 0) << server_.output();
    }
  }
  HttpReply create(const std::string &body = R"({"meta":{"name":"bad input"}})") {
    return http("POST", server_.live_inputs_url(), kToken, "application/json", body);
  }
  std::string item_url(const std::string &uid) { return server_.live_inputs_url() + "/" + uid; }
  std::string status(const std::string &uid) {
    return str(http("GET", item_url(uid), kToken).result(), "status");
  }
  gint64 total() {
    return json_object_get_int_member(http("GET", server_.live_inputs_url(), kToken).result(),
                                      "total");
  }

  // A fresh input, a real publisher and a viewer that decodes frames: the
  // server still does its job.
  void expect_still_serving() {
    HttpReply created = create();
    ASSERT_EQ(created.status, 200u) << created.body;
    const std::string uid = str(created.result(), "uid");
    Client publisher(publisher_launch(nested(created.result(), "webRTC", "url")));
    publisher.play();
    ASSERT_TRUE(wait_for([&] { return status(uid) == "connected" || publisher.bus->has_error(); },
                         20000))
        << publisher.bus->error_text() << "\n" << server_.output();
    Client viewer(viewer_launch(nested(created.result(), "webRTCPlayback", "url")));
    BufferCounter frames;
    gobj::Ref<GstElement> out = viewer.by_name("out");
    gobj::Ref<GstPad> pad = gobj::adopt(gst_element_get_static_pad(out.get(), "sink"));
    frames.attach(pad.get());
    viewer.play();
    EXPECT_TRUE(wait_for([&] { return frames.count() >= 15 || viewer.bus->has_error(); }, 30000))
        << "decoded " << frames.count() << "; viewer: " << viewer.bus->error_text();
    EXPECT_GE(frames.count(), 15u) << viewer.bus->error_text();
    EXPECT_EQ(http("GET", server_.live_inputs_url(), kToken).status, 200u);
  }

  std::map<std::string, std::string> extra_env_;
  TempDir dir_;
  ServerProcess server_{dir_.path()};
};

void expect_refused(const HttpReply &r, const BadOffer &c, const char *where) {
  EXPECT_EQ(r.status, c.status) << where << " " << c.name << ": " << r.body;
  EXPECT_EQ(r.content_type.rfind("text/plain", 0), 0u) << where << " " << c.name;
  EXPECT_GT(r.body.size(), 5u) << where << " " << c.name << ": no reason given";
  EXPECT_TRUE(r.header("location").empty()) << where << " " << c.name;
}

TEST_F(ServerBadInput, BadOffersGetExactStatusesWithReasonsAndTheServerKeepsServing) {
  HttpReply a = create();
  ASSERT_EQ(a.status, 200u);
  const std::string uid = str(a.result(), "uid");
  const std::string publish = nested(a.result(), "webRTC", "url");
  const std::string play = nested(a.result(), "webRTCPlayback", "url");

  // WHIP: the input has no publisher; each bad offer is refused and leaves
  // no session behind.
  for (const auto &c : bad_offers("sendonly")) {
    HttpReply r = http("POST", publish, "", "application/sdp", c.body);
    expect_refused(r, c, "WHIP");
    g_print("WHIP %-22s -> %u %s\n", c.name.c_str(), r.status, first_line(r.body).c_str());
  }
  EXPECT_NE(status(uid), "connected");
  // Wrong or missing content type on an otherwise good offer.
  EXPECT_EQ(http("POST", publish, "", "text/plain", offer("sendonly")).status, 415u);
  EXPECT_EQ(http("POST", publish, "", "application/json", offer("sendonly")).status, 415u);

  // WHEP offers are looked at once a publisher is live (before, the answer
  // is 503 + Retry-After): publish to A, then send the bad offers to A.
  Client publisher(publisher_launch(publish));
  publisher.play();
  ASSERT_TRUE(wait_for([&] { return status(uid) == "connected" || publisher.bus->has_error(); },
                       20000))
      << publisher.bus->error_text() << "\n" << server_.output();
  for (const auto &c : bad_offers("recvonly")) {
    HttpReply r = http("POST", play, "", "application/sdp", c.body);
    expect_refused(r, c, "WHEP");
    g_print("WHEP %-22s -> %u %s\n", c.name.c_str(), r.status, first_line(r.body).c_str());
  }
  EXPECT_EQ(http("POST", play, "", "text/plain", offer("recvonly")).status, 415u);
  EXPECT_TRUE(wait_for([&] {
    return json_object_get_int_member(http("GET", item_url(uid), kToken).result(),
                                      "liveViewers") == 0;
  }, 10000));
  EXPECT_EQ(status(uid), "connected") << "bad viewers must not disturb the publisher";

  expect_still_serving();
}

TEST_F(ServerBadInput, WrongMethodOnEveryRouteIs405WithAllow) {
  HttpReply a = create();
  const std::string uid = str(a.result(), "uid");
  const std::string publish = nested(a.result(), "webRTC", "url");
  const std::string play = nested(a.result(), "webRTCPlayback", "url");
  const std::string session = "0123456789abcdef0123456789abcdef";
  struct Route {
    std::string url;
    std::string allow;
    bool api;
  };
  const std::vector<Route> routes = {
      {server_.live_inputs_url(), "GET, POST, OPTIONS", true},
      {item_url(uid), "GET, PUT, DELETE, OPTIONS", true},
      {publish, "POST, OPTIONS", false},
      {play, "POST, OPTIONS", false},
      {publish + "/" + session, "PATCH, DELETE, OPTIONS", false},
      {play + "/" + session, "PATCH, DELETE, OPTIONS", false},
  };
  for (const auto &route : routes) {
    for (const char *method : {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "TRACE", "FOO"}) {
      if (route.allow.find(method) != std::string::npos) continue;
      HttpReply r = http(method, route.url, route.api ? kToken : "", "application/json", "{}");
      EXPECT_EQ(r.status, 405u) << method << " " << route.url << ": " << r.body;
      EXPECT_EQ(r.header("allow"), route.allow) << method << " " << route.url;
      if (strcmp(method, "HEAD") == 0) continue;  // no body on HEAD
      if (route.api)
        expect_envelope(r, false);
      else
        EXPECT_FALSE(r.body.empty()) << method << " " << route.url;
    }
  }
  EXPECT_EQ(total(), 1);
}

TEST_F(ServerBadInput, JsonBombsInvalidUtf8UnknownFieldsAndOversizedMeta) {
  const std::string uid = str(create().result(), "uid");
  const std::string deep = std::string(10000, '[') + std::string(10000, ']');
  const std::string deep_object = R"({"meta":)" + [] {
    std::string s;
    for (int i = 0; i < 10000; i++) s += R"({"a":)";
    s += "1";
    s += std::string(10000, '}');
    return s;
  }() + "}";
  struct Case {
    std::string name, body;
    guint status;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"10000-deep arrays", deep, 400, "deeper"},
      {"10000-deep objects in meta", deep_object, 400, "deeper"},
      {"invalid UTF-8 in a string", "{\"meta\":{\"name\":\"\xc3\x28\"}}", 400, "UTF-8"},
      {"invalid UTF-8 in a key", "{\"meta\":{\"\xff\":1}}", 400, "UTF-8"},
      {"overlong UTF-8", "{\"meta\":{\"name\":\"\xc0\xaf\"}}", 400, "UTF-8"},
      {"NUL in the body", std::string("{\"meta\":{\"name\":\"a\0b\"}}", 24), 400, ""},
      {"oversized meta", R"({"meta":{"blob":")" + std::string(30000, 'x') + R"("}})", 400,
       "limit"},
  };
  for (const char *method : {"POST", "PUT"}) {
    const std::string url = strcmp(method, "POST") == 0 ? server_.live_inputs_url() : item_url(uid);
    for (const auto &c : cases) {
      HttpReply r = http(method, url, kToken, "application/json", c.body);
      EXPECT_EQ(r.status, c.status) << method << " " << c.name << ": " << r.body.substr(0, 200);
      expect_envelope(r, false);
      if (!c.says.empty()) {
        EXPECT_NE(error_message(r).find(c.says), std::string::npos)
            << method << " " << c.name << ": '" << error_message(r) << "'";
      }
    }
  }
  EXPECT_EQ(total(), 1);
  EXPECT_EQ(nested(http("GET", item_url(uid), kToken).result(), "meta", "name"), "bad input");

  // Unknown fields are ignored, as Cloudflare's API does: accepted, not
  // stored, not echoed.
  HttpReply u = create(R"({"meta":{"name":"u"},"noSuchField":{"x":[1,2]},"uid":"ffff"})");
  ASSERT_EQ(u.status, 200u) << u.body;
  EXPECT_FALSE(json_object_has_member(u.result(), "noSuchField"));
  EXPECT_NE(str(u.result(), "uid"), "ffff");
  HttpReply p = http("PUT", item_url(uid), kToken, "application/json",
                     R"({"meta":{"name":"renamed"},"bogus":true})");
  EXPECT_EQ(p.status, 200u) << p.body;
  EXPECT_EQ(nested(p.result(), "meta", "name"), "renamed");
  EXPECT_FALSE(json_object_has_member(p.result(), "bogus"));
}

TEST_F(ServerBadInput, PathTricksInUidsAndSecretsAre404Never500) {
  HttpReply a = create();
  const std::string uid = str(a.result(), "uid");
  const std::string publish = nested(a.result(), "webRTC", "url");
  const std::string secret =
      publish.substr(server_.base_url.size() + 1, publish.find("/webRTC") - server_.base_url.size() - 1);
  g_autofree gchar *upper_uid = g_ascii_strup(uid.c_str(), -1);
  g_autofree gchar *upper_secret = g_ascii_strup(secret.c_str(), -1);
  const std::vector<std::string> keys = {
      "..%2f..%2fetc%2fpasswd",
      "..%2F..%2Fetc%2Fpasswd",
      "%2e%2e",
      "%2E%2E%2F%2E%2E",
      "..",
      upper_uid,
      upper_secret,
      uid.substr(0, 31) + "%00",
      uid + "%00",
      "%" + uid.substr(1),
      uid + "%2f",
      std::string(4096, 'a'),
  };
  std::set<std::string> seen;
  auto check = [&](const std::string &method, const std::string &path, bool api) {
    const std::string raw = raw_http(
        server_.base_url, method + " " + path + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                              kToken +
                              "\r\nContent-Type: application/sdp\r\nContent-Length: 5\r\n"
                              "Connection: close\r\n\r\nv=0\r\n");
    const std::string status_line = first_line(raw);
    EXPECT_NE(status_line.find(" 404 "), std::string::npos)
        << method << " " << path.substr(0, 80) << " -> " << status_line;
    if (api) {
      EXPECT_NE(raw.find("\"success\":false"), std::string::npos) << raw.substr(0, 300);
    }
    seen.insert(status_line.substr(0, 12));
  };
  for (const auto &k : keys) {
    check("POST", "/" + k + "/webRTC/publish", false);
    check("POST", "/" + k + "/webRTC/play", false);
    check("DELETE", "/" + secret + "/webRTC/publish/" + k, false);
    check("GET", server_.live_inputs_url().substr(server_.base_url.size()) + "/" + k, true);
  }
  check("POST", "/..%2f..%2fetc/passwd/webRTC/publish", false);
  // A literal NUL byte in the request line: libsoup refuses the request line
  // itself (400) or we 404; never a 5xx, and the server keeps going.
  const std::string nul = raw_http(server_.base_url,
                                   std::string("GET /ab\0cd/webRTC/play HTTP/1.1\r\nHost: x\r\n"
                                               "Connection: close\r\n\r\n", 63));
  EXPECT_TRUE(nul.empty() || std::regex_search(nul, std::regex("^HTTP/1\\.[01] 4")))
      << first_line(nul);
  EXPECT_EQ(http("GET", item_url(uid), kToken).status, 200u);
  EXPECT_EQ(total(), 1);
}

TEST_F(ServerBadInput, OversizedHeadersAre4xxAndTheServerKeepsServing) {
  const std::string path = server_.live_inputs_url().substr(server_.base_url.size());
  // Over our limit (16 KiB) but under libsoup's (64 KiB): 431 with a reason,
  // on the API (envelope) and on a WHIP route.
  for (const std::string &p : {path, std::string("/nope/webRTC/publish")}) {
    const std::string raw = raw_http(
        server_.base_url, "GET " + p + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + kToken +
                              "\r\nCookie: " + std::string(24 * 1024, 'c') +
                              "\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(first_line(raw).rfind("HTTP/1.1 431", 0), 0u) << p << ": " << first_line(raw);
    EXPECT_NE(raw.find("the limit is 16384"), std::string::npos) << raw.substr(0, 400);
  }
  EXPECT_EQ(http("GET", server_.live_inputs_url(), kToken).status, 200u);
  // Beyond libsoup's own limit it closes the connection (or answers 4xx).
  for (size_t size : {size_t(64 * 1024), size_t(1024 * 1024)}) {
    const std::string one_big = "GET " + path + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                                kToken + "\r\nX-Big: " + std::string(size, 'b') +
                                "\r\nConnection: close\r\n\r\n";
    const std::string raw = raw_http(server_.base_url, one_big);
    const std::string line = first_line(raw);
    // Refused (4xx) or the connection closed; never 2xx or 5xx.
    EXPECT_TRUE(raw.empty() || line.rfind("HTTP/1.1 4", 0) == 0) << size << ": " << line;
    g_print("header of %zu bytes -> %s\n", size, raw.empty() ? "connection closed" : line.c_str());

    std::string many = "GET " + path + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + kToken +
                       "\r\n";
    for (size_t i = 0; many.size() < size; i++) many += "X-H" + std::to_string(i) + ": v\r\n";
    many += "Connection: close\r\n\r\n";
    const std::string raw2 = raw_http(server_.base_url, many);
    const std::string line2 = first_line(raw2);
    EXPECT_TRUE(raw2.empty() || line2.rfind("HTTP/1.1 4", 0) == 0) << size << ": " << line2;
    g_print("%zu bytes of small headers -> %s\n", size,
            raw2.empty() ? "connection closed" : line2.c_str());
    EXPECT_EQ(http("GET", server_.live_inputs_url(), kToken).status, 200u);
  }
}

TEST_F(ServerBadInput, BadTokensAre401OnEveryApiRouteAndChangeNothing) {
  const std::string uid = str(create().result(), "uid");
  const std::vector<std::pair<std::string, std::string>> routes = {
      {"GET", server_.live_inputs_url()},
      {"POST", server_.live_inputs_url()},
      {"GET", item_url(uid)},
      {"PUT", item_url(uid)},
      {"DELETE", item_url(uid)},
      {"GET", item_url("0123456789abcdef0123456789abcdef")},
      {"DELETE", item_url("0123456789abcdef0123456789abcdef")},
  };
  const std::string t = kToken;
  const std::vector<std::pair<std::string, std::string>> auths = {
      {"no header", ""},
      {"empty", "Bearer "},
      {"empty, no space", "Bearer"},
      {"wrong", "Bearer wrong-token"},
      {"prefix", "Bearer " + t.substr(0, t.size() - 1)},
      {"longer", "Bearer " + t + "x"},
      {"other scheme", "Basic " + t},
      {"no scheme", t},
      {"token twice", "Bearer " + t + " " + t},
  };
  for (const auto &route : routes) {
    for (const auto &auth : auths) {
      std::map<std::string, std::string> headers;
      if (!auth.second.empty()) headers["Authorization"] = auth.second;
      HttpReply r = http(route.first, route.second, "", "application/json",
                         R"({"meta":{"name":"changed"}})", headers);
      EXPECT_EQ(r.status, 401u) << route.first << " " << route.second << " with " << auth.first;
      EXPECT_EQ(r.header("www-authenticate").rfind("Bearer", 0), 0u);
      expect_envelope(r, false);
    }
  }
  EXPECT_EQ(total(), 1);
  HttpReply item = http("GET", item_url(uid), kToken);
  EXPECT_EQ(nested(item.result(), "meta", "name"), "bad input");
  EXPECT_EQ(str(item.result(), "created"), str(item.result(), "modified"));
}

// With the elements' debug output on, a whole session's worth of requests
// leaves no credential in what the server prints.
class ServerLogs : public ServerBadInput {
 protected:
  void SetUp() override {
    extra_env_ = {{"GST_DEBUG", "whip*:6,whep*:6,webrtcbin:4,*:2"}, {"G_MESSAGES_DEBUG", "all"}};
    ServerBadInput::SetUp();
  }
};

// Runs a whole session's worth of requests (create, bad token, publish,
// play, wrong-secret and guessed session URLs, leave, delete), stops the
// server and returns what it printed. `credentials` gets the API token, the
// publish secrets and the publisher's session id; `viewer_session` the
// viewer's session id.
std::string run_sessions(ServerBadInput *t, ServerProcess &server,
                         std::vector<std::string> *credentials, std::string *viewer_session) {
  auto create = [&] {
    return http("POST", server.live_inputs_url(), kToken, "application/json", "{}");
  };
  HttpReply a = create(), b = create();
  EXPECT_EQ(a.status, 200u);
  const std::string uid = str(a.result(), "uid");
  const std::string item = server.live_inputs_url() + "/" + uid;
  auto status = [&] { return str(http("GET", item, kToken).result(), "status"); };
  const std::string publish = nested(a.result(), "webRTC", "url");
  const std::string publish_b = nested(b.result(), "webRTC", "url");
  const std::string play = nested(a.result(), "webRTCPlayback", "url");
  *credentials = {
      kToken,
      publish.substr(server.base_url.size() + 1, 32),
      publish_b.substr(server.base_url.size() + 1, 32),
  };
  // A bad token gets logged no more than a good one.
  http("GET", server.live_inputs_url(), "attacker-token-0123456789");
  credentials->push_back("attacker-token-0123456789");
  {
    Client publisher(publisher_launch(publish));
    publisher.play();
    EXPECT_TRUE(wait_for([&] { return status() == "connected" || publisher.bus->has_error(); },
                         20000))
        << publisher.bus->error_text();
    Client viewer(viewer_launch(play));
    BufferCounter frames;
    gobj::Ref<GstElement> out = viewer.by_name("out");
    gobj::Ref<GstPad> pad = gobj::adopt(gst_element_get_static_pad(out.get(), "sink"));
    frames.attach(pad.get());
    viewer.play();
    EXPECT_TRUE(wait_for([&] { return frames.count() >= 10 || viewer.bus->has_error(); }, 30000))
        << viewer.bus->error_text();
    const std::string publisher_url = publisher.resource_url("whip");
    const std::string viewer_url = viewer.resource_url("whep");
    EXPECT_FALSE(publisher_url.empty());
    EXPECT_FALSE(viewer_url.empty());
    const std::string ps = publisher_url.substr(publisher_url.rfind('/') + 1);
    *viewer_session = viewer_url.substr(viewer_url.rfind('/') + 1);
    credentials->push_back(ps);

    // Another input's secret on this session, the other kind of endpoint,
    // and a guessed session: 404, and the publisher stays live.
    EXPECT_EQ(http("DELETE", publish_b + "/" + ps).status, 404u);
    EXPECT_EQ(http("PATCH", publish_b + "/" + ps, "", "application/trickle-ice-sdpfrag",
                   "a=end-of-candidates\r\n").status, 404u);
    EXPECT_EQ(http("DELETE", publish + "/" + *viewer_session).status, 404u);
    EXPECT_EQ(http("DELETE", play + "/" + ps).status, 404u);
    g_autofree gchar *guess = g_strdup_printf("%s/%032x", publish.c_str(), 7);
    EXPECT_EQ(http("DELETE", guess).status, 404u);
    EXPECT_EQ(status(), "connected");
    // The clients leave: whipsink and whepsrc DELETE their sessions.
  }
  EXPECT_TRUE(wait_for([&] { return status() == "client_disconnect"; }, 15000)) << status();
  EXPECT_EQ(http("DELETE", item, kToken).status, 200u);
  EXPECT_EQ(server.terminate(), 0);
  (void)t;
  return server.output();
}

void expect_absent(const std::string &out, const std::string &credential) {
  size_t hits = 0, first = std::string::npos;
  for (size_t at = out.find(credential); at != std::string::npos;
       at = out.find(credential, at + 1)) {
    if (!hits++) first = at;
  }
  EXPECT_EQ(hits, 0u) << "credential '" << credential << "' appears " << hits
                      << " times in the server's output, first: ..."
                      << (hits ? out.substr(first > 200 ? first - 200 : 0, 400) : "") << "...";
}

TEST_F(ServerLogs, NoTokenSecretOrPublisherSessionIdIsEverLogged) {
  std::vector<std::string> credentials;
  std::string viewer_session;
  const std::string out = run_sessions(this, server_, &credentials, &viewer_session);
  ASSERT_GT(out.size(), 1000u) << "debug output expected: " << out;
  g_print("scanned %zu bytes of server output for %zu credentials\n", out.size(),
          credentials.size());
  for (const auto &c : credentials) expect_absent(out, c);
}

// whepserversink used to name each viewer's webrtcbin "viewer-<session id>",
// so webrtcbin's own log lines printed the id that authorises DELETE/PATCH
// on that viewer's session; it is a counter now.
TEST_F(ServerLogs, ViewerSessionIdIsNeverLogged) {
  std::vector<std::string> credentials;
  std::string viewer_session;
  const std::string out = run_sessions(this, server_, &credentials, &viewer_session);
  ASSERT_FALSE(viewer_session.empty());
  expect_absent(out, viewer_session);
}

}  // namespace
