// Helpers shared by the server test files: the API envelope and fields,
// and skipping while the server elements are not built.
#pragma once

#include <gst/gst.h>
#include <gtest/gtest.h>
#include <json-glib/json-glib.h>

#include <string>

#include "server-process.h"

namespace test {

inline constexpr const char *kToken = "test-token-0123456789abcdef";

// A string member, "<absent>" or "<null>" when it is not a string.
std::string str(JsonObject *o, const char *member);
// A string member of an object member.
std::string nested(JsonObject *o, const char *block, const char *member);
// The envelope every API response has, success or error.
void expect_envelope(const HttpReply &r, bool success);
// errors[0].message, or "".
std::string error_message(const HttpReply &r);

// The server refuses to start without the server elements its default
// template names; tests that need a running server fail without them (all four are built).
bool server_elements_available();

}  // namespace test

#define REQUIRE_SERVER_ELEMENTS()                                         \
  do {                                                                  \
    if (!test::server_elements_available()) {                           \
      FAIL() << "whipserversrc/whepserversink are not built yet"; \
    }                                                                   \
  } while (0)
