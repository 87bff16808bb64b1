// Security properties of the shared helpers (SECURITY.md).
#include <glib.h>
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "common/http-types.h"

// Session ids, live-input uids and publish secrets must not come from GLib's
// Mersenne Twister (predictable from its outputs): reseeding it must not
// make ids repeat.
TEST(Security, RandomIdsDoNotDependOnGlibPrng) {
  g_random_set_seed(42);
  const std::string a = whipwhep::random_id_hex128();
  g_random_set_seed(42);
  const std::string b = whipwhep::random_id_hex128();
  EXPECT_NE(a, b);
}

TEST(Security, RandomIdsAre128BitLowercaseHexAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 2000; i++) {
    const std::string id = whipwhep::random_id_hex128();
    ASSERT_EQ(id.size(), 32u);
    for (char c : id) ASSERT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << id;
    EXPECT_TRUE(seen.insert(id).second) << "repeated id " << id;
  }
}

TEST(Security, BearerTokenMustMatchExactly) {
  const std::string token = "0123456789abcdef0123456789abcdef";
  EXPECT_TRUE(whipwhep::bearer_matches("Bearer " + token, token));
  EXPECT_TRUE(whipwhep::bearer_matches("bearer " + token, token));
  EXPECT_FALSE(whipwhep::bearer_matches("", token));
  EXPECT_FALSE(whipwhep::bearer_matches("Bearer ", token));
  EXPECT_FALSE(whipwhep::bearer_matches("Bearer " + token.substr(0, 31), token));
  EXPECT_FALSE(whipwhep::bearer_matches("Bearer " + token + "0", token));
  EXPECT_FALSE(whipwhep::bearer_matches("Basic " + token, token));
  EXPECT_FALSE(whipwhep::bearer_matches(token, token));
  EXPECT_FALSE(whipwhep::bearer_matches("Bearer ", ""));  // no token configured: nobody
}
