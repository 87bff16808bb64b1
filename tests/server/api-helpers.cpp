#include "api-helpers.h"

namespace test {

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

bool server_elements_available() {
  for (const char *name : {"whipserversrc", "whepserversink"}) {
    gobj::Ref<GstElementFactory> f = gobj::adopt(gst_element_factory_find(name));
    if (!f) return false;
  }
  return true;
}

}  // namespace test
