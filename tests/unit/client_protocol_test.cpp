// Pure WHIP/WHEP client rules: Location resolution, redirects, reasons.
#include <gtest/gtest.h>

#include "client-protocol.h"
#include "harness.h"

using namespace whipwhep;

TEST(ClientProtocol, ResolvesAbsoluteLocation) {
  EXPECT_EQ(resolve_location("http://a:1/whip", "http://b:2/s/1"), "http://b:2/s/1");
}

TEST(ClientProtocol, ResolvesPathAbsoluteLocation) {
  EXPECT_EQ(resolve_location("http://a:1/x/whip", "/whip/abc"), "http://a:1/whip/abc");
}

TEST(ClientProtocol, ResolvesRelativeLocationAgainstRequestUrl) {
  EXPECT_EQ(resolve_location("http://a:1/x/whip", "abc"), "http://a:1/x/abc");
  EXPECT_EQ(resolve_location("http://a:1/x/whip/", "abc"), "http://a:1/x/whip/abc");
  EXPECT_EQ(resolve_location("https://a/x/y/whip", "../s"), "https://a/x/s");
  EXPECT_EQ(resolve_location("https://a/whip", "//b/s"), "https://b/s");
}

TEST(ClientProtocol, RejectsEmptyOrUnparsableLocation) {
  EXPECT_EQ(resolve_location("http://a/whip", ""), "");
  EXPECT_EQ(resolve_location("not a url", "/x"), "");
}

TEST(ClientProtocol, OnlyMethodPreservingRedirectsAreFollowed) {
  EXPECT_TRUE(is_method_preserving_redirect(307));
  EXPECT_TRUE(is_method_preserving_redirect(308));
  EXPECT_FALSE(is_method_preserving_redirect(301));
  EXPECT_FALSE(is_method_preserving_redirect(302));
  EXPECT_FALSE(is_method_preserving_redirect(303));
}

TEST(ClientProtocol, ReasonIsShortBodyTextElsePhrase) {
  EXPECT_EQ(server_reason(401, "Unauthorized", "token expired\n"), "token expired");
  EXPECT_EQ(server_reason(500, "Internal Server Error", "<html><body>x</body></html>"),
            "Internal Server Error");
  EXPECT_EQ(server_reason(404, "", ""), "Not Found");
}

TEST(ClientProtocol, FailureTextNamesMethodUrlStatusAndReason) {
  EXPECT_EQ(describe_http_failure("POST", "http://a/whip", 401, "token expired"),
            "POST http://a/whip: HTTP 401 Unauthorized: token expired");
  EXPECT_EQ(describe_http_failure("POST", "http://a/whip", 404, "Not Found"),
            "POST http://a/whip: HTTP 404 Not Found");
}

TEST(ClientProtocol, OnlyHttpUrlsAreEndpoints) {
  EXPECT_TRUE(is_http_url("http://127.0.0.1:8190/whip"));
  EXPECT_TRUE(is_http_url("https://example.com/whip"));
  EXPECT_FALSE(is_http_url("ftp://example.com/whip"));
  EXPECT_FALSE(is_http_url("127.0.0.1:8190/whip"));
  EXPECT_FALSE(is_http_url(""));
}
