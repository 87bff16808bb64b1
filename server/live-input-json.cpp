#include "live-input-json.h"

#include <cmath>
#include <cstring>

namespace server {

namespace {

// json-glib's parser recurses once per nesting level; a body of 64 KiB of
// '[' would recurse 64 K deep. Live-input bodies nest three levels at most,
// so anything past this is refused before json-glib sees it.
constexpr int kMaxJsonDepth = 32;

// Nesting depth of JSON text, ignoring brackets inside strings. Not a
// parser: it only bounds the work json-glib will do.
bool depth_within(const char *data, gsize size, int max_depth) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (gsize i = 0; i < size; i++) {
    const char c = data[i];
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) return false;
    } else if (c == '}' || c == ']') {
      depth--;
    }
  }
  return true;
}

std::string type_name(JsonNode *node) {
  switch (JSON_NODE_TYPE(node)) {
    case JSON_NODE_OBJECT: return "an object";
    case JSON_NODE_ARRAY: return "an array";
    case JSON_NODE_NULL: return "null";
    case JSON_NODE_VALUE: {
      const GType t = json_node_get_value_type(node);
      if (t == G_TYPE_BOOLEAN) return "a boolean";
      if (t == G_TYPE_STRING) return "a string";
      return "a number";
    }
  }
  return "something else";
}

bool get_bool(JsonNode *node, const char *name, std::optional<bool> *out, std::string *error) {
  if (!JSON_NODE_HOLDS_VALUE(node) || json_node_get_value_type(node) != G_TYPE_BOOLEAN) {
    *error = std::string(name) + " must be true or false, not " + type_name(node);
    return false;
  }
  *out = json_node_get_boolean(node) != FALSE;
  return true;
}

bool get_int(JsonNode *node, const char *name, gint64 min, gint64 max, gint64 *out,
             std::string *error) {
  bool ok = false;
  gint64 v = 0;
  if (JSON_NODE_HOLDS_VALUE(node)) {
    const GType t = json_node_get_value_type(node);
    if (t == G_TYPE_INT64) {
      v = json_node_get_int(node);
      ok = true;
    } else if (t == G_TYPE_DOUBLE) {
      const double d = json_node_get_double(node);
      ok = std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9e15;
      v = ok ? static_cast<gint64>(d) : 0;
    }
  }
  if (!ok || v < min || v > max) {
    *error = std::string(name) + " must be a whole number from " + std::to_string(min) + " to " +
             std::to_string(max);
    return false;
  }
  *out = v;
  return true;
}

bool parse_recording(JsonNode *node, InputFields *out, std::string *error) {
  if (JSON_NODE_HOLDS_NULL(node)) return true;
  if (!JSON_NODE_HOLDS_OBJECT(node)) {
    *error = "recording must be an object, not " + type_name(node);
    return false;
  }
  JsonObject *o = json_node_get_object(node);
  if (JsonNode *m = json_object_get_member(o, "mode")) {
    const char *mode = JSON_NODE_HOLDS_VALUE(m) && json_node_get_value_type(m) == G_TYPE_STRING
                           ? json_node_get_string(m)
                           : nullptr;
    if (!mode || (g_strcmp0(mode, "off") != 0 && g_strcmp0(mode, "automatic") != 0)) {
      *error = "recording.mode must be \"off\" or \"automatic\"";
      return false;
    }
    out->recording_mode = mode;
  }
  if (JsonNode *t = json_object_get_member(o, "timeoutSeconds")) {
    gint64 v = 0;
    if (!get_int(t, "recording.timeoutSeconds", 0, 86400, &v, error)) return false;
    out->recording_timeout_seconds = v;
  }
  if (JsonNode *s = json_object_get_member(o, "requireSignedURLs"))
    if (!get_bool(s, "recording.requireSignedURLs", &out->recording_require_signed_urls, error))
      return false;
  if (JsonNode *a = json_object_get_member(o, "allowedOrigins")) {
    if (JSON_NODE_HOLDS_NULL(a)) {
      out->recording_allowed_origins = std::optional<std::vector<std::string>>();
    } else if (JSON_NODE_HOLDS_ARRAY(a)) {
      std::vector<std::string> origins;
      JsonArray *arr = json_node_get_array(a);
      for (guint i = 0; i < json_array_get_length(arr); i++) {
        JsonNode *e = json_array_get_element(arr, i);
        if (!JSON_NODE_HOLDS_VALUE(e) || json_node_get_value_type(e) != G_TYPE_STRING ||
            strchr(json_node_get_string(e), '\n')) {
          *error = "recording.allowedOrigins must be an array of origin strings";
          return false;
        }
        origins.emplace_back(json_node_get_string(e));
      }
      out->recording_allowed_origins = std::move(origins);
    } else {
      *error = "recording.allowedOrigins must be an array of strings or null";
      return false;
    }
  }
  return true;
}

JsonNode *string_array_or_null(const std::optional<std::vector<std::string>> &v) {
  if (!v) return json_node_new(JSON_NODE_NULL);
  JsonArray *arr = json_array_sized_new(static_cast<guint>(v->size()));
  for (const auto &s : *v) json_array_add_string_element(arr, s.c_str());
  JsonNode *n = json_node_new(JSON_NODE_ARRAY);
  json_node_take_array(n, arr);
  return n;
}

// meta is stored as JSON text; a corrupt value degrades to {}.
JsonNode *meta_node(const std::string &meta_json) {
  g_autoptr(GError) err = nullptr;
  JsonNode *n = json_from_string(meta_json.c_str(), &err);
  if (!n || !JSON_NODE_HOLDS_OBJECT(n)) {
    if (n) json_node_unref(n);
    n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, json_object_new());
  }
  return n;
}

JsonNode *url_block(const std::string &url) {
  JsonObject *o = json_object_new();
  json_object_set_string_member(o, "url", url.c_str());
  JsonNode *n = json_node_new(JSON_NODE_OBJECT);
  json_node_take_object(n, o);
  return n;
}

void set_optional_int(JsonObject *o, const char *name, const std::optional<gint64> &v) {
  if (v)
    json_object_set_int_member(o, name, *v);
  else
    json_object_set_null_member(o, name);
}

std::string to_string(JsonNode *root) {
  g_autoptr(JsonGenerator) gen = json_generator_new();
  json_generator_set_root(gen, root);
  g_autofree gchar *text = json_generator_to_data(gen, nullptr);
  return text;
}

std::string envelope(JsonNode *result, bool success, int code, const std::string &message) {
  JsonObject *o = json_object_new();
  if (result)
    json_object_set_member(o, "result", result);
  else
    json_object_set_null_member(o, "result");
  json_object_set_boolean_member(o, "success", success);
  JsonArray *errors = json_array_new();
  if (!success) {
    JsonObject *e = json_object_new();
    json_object_set_int_member(e, "code", code);
    json_object_set_string_member(e, "message", message.c_str());
    json_array_add_object_element(errors, e);
  }
  json_object_set_array_member(o, "errors", errors);
  json_object_set_array_member(o, "messages", json_array_new());
  JsonNode *root = json_node_new(JSON_NODE_OBJECT);
  json_node_take_object(root, o);
  std::string text = to_string(root);
  json_node_unref(root);
  return text;
}

}  // namespace

void InputFields::apply_to(LiveInputRecord *r) const {
  if (meta_json) r->meta_json = *meta_json;
  if (enabled) r->enabled = *enabled;
  if (prefer_low_latency) r->prefer_low_latency = *prefer_low_latency;
  if (recording_mode) r->recording.mode = *recording_mode;
  if (recording_timeout_seconds) r->recording.timeout_seconds = *recording_timeout_seconds;
  if (recording_require_signed_urls)
    r->recording.require_signed_urls = *recording_require_signed_urls;
  if (recording_allowed_origins) r->recording.allowed_origins = *recording_allowed_origins;
  if (delete_recording_after_days) r->delete_recording_after_days = *delete_recording_after_days;
}

bool parse_input_fields(const char *data, gsize size, const Limits &limits, InputFields *out,
                        std::string *error) {
  *out = InputFields();
  if (size == 0) return true;
  if (!g_utf8_validate(data, static_cast<gssize>(size), nullptr)) {
    *error = "the request body is not valid UTF-8";
    return false;
  }
  if (!depth_within(data, size, kMaxJsonDepth)) {
    *error = "the request body nests JSON deeper than " + std::to_string(kMaxJsonDepth) + " levels";
    return false;
  }
  g_autoptr(JsonParser) parser = json_parser_new_immutable();
  g_autoptr(GError) err = nullptr;
  if (!json_parser_load_from_data(parser, data, static_cast<gssize>(size), &err)) {
    *error = std::string("malformed JSON: ") + err->message;
    return false;
  }
  JsonNode *root = json_parser_get_root(parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
    *error = "the request body must be a JSON object, not " +
             (root ? type_name(root) : std::string("empty"));
    return false;
  }
  JsonObject *o = json_node_get_object(root);
  if (JsonNode *m = json_object_get_member(o, "meta")) {
    if (JSON_NODE_HOLDS_NULL(m)) {
      out->meta_json = "{}";
    } else if (!JSON_NODE_HOLDS_OBJECT(m)) {
      *error = "meta must be a JSON object, not " + type_name(m);
      return false;
    } else {
      std::string text = to_string(m);
      if (text.size() > limits.max_meta_bytes) {
        *error = "meta is " + std::to_string(text.size()) + " bytes; the limit is " +
                 std::to_string(limits.max_meta_bytes);
        return false;
      }
      out->meta_json = std::move(text);
    }
  }
  if (JsonNode *e = json_object_get_member(o, "enabled"))
    if (!get_bool(e, "enabled", &out->enabled, error)) return false;
  if (JsonNode *p = json_object_get_member(o, "preferLowLatency"))
    if (!get_bool(p, "preferLowLatency", &out->prefer_low_latency, error)) return false;
  if (JsonNode *r = json_object_get_member(o, "recording"))
    if (!parse_recording(r, out, error)) return false;
  if (JsonNode *d = json_object_get_member(o, "deleteRecordingAfterDays")) {
    if (JSON_NODE_HOLDS_NULL(d)) {
      out->delete_recording_after_days = std::optional<gint64>();
    } else {
      gint64 v = 0;
      if (!get_int(d, "deleteRecordingAfterDays", 1, 36500, &v, error)) return false;
      out->delete_recording_after_days = v;
    }
  }
  return true;
}

std::string publish_url(const std::string &public_url, const LiveInputRecord &r) {
  return public_url + "/" + r.secret + "/webRTC/publish";
}

std::string playback_url(const std::string &public_url, const LiveInputRecord &r) {
  return public_url + "/" + r.uid + "/webRTC/play";
}

JsonNode *live_input_to_json(const LiveInputRecord &r, const LiveState &live,
                             const std::string &public_url) {
  JsonObject *o = json_object_new();
  json_object_set_string_member(o, "uid", r.uid.c_str());
  json_object_set_string_member(o, "created", r.created.c_str());
  json_object_set_string_member(o, "modified", r.modified.c_str());
  json_object_set_member(o, "meta", meta_node(r.meta_json));
  if (live.status)
    json_object_set_string_member(o, "status", live.status->c_str());
  else
    json_object_set_null_member(o, "status");
  json_object_set_boolean_member(o, "enabled", r.enabled);
  json_object_set_boolean_member(o, "preferLowLatency", r.prefer_low_latency);

  JsonObject *rec = json_object_new();
  json_object_set_string_member(rec, "mode", r.recording.mode.c_str());
  json_object_set_int_member(rec, "timeoutSeconds", r.recording.timeout_seconds);
  json_object_set_boolean_member(rec, "requireSignedURLs", r.recording.require_signed_urls);
  json_object_set_member(rec, "allowedOrigins", string_array_or_null(r.recording.allowed_origins));
  json_object_set_object_member(o, "recording", rec);
  set_optional_int(o, "deleteRecordingAfterDays", r.delete_recording_after_days);

  json_object_set_member(o, "webRTC", url_block(publish_url(public_url, r)));
  json_object_set_member(o, "webRTCPlayback", url_block(playback_url(public_url, r)));
  // Protocols not served (yet): present as null, as the hosted type allows.
  for (const char *name : {"rtmps", "rtmpsPlayback", "srt", "srtPlayback"})
    json_object_set_null_member(o, name);
  json_object_set_int_member(o, "liveViewers", live.live_viewers);

  JsonNode *n = json_node_new(JSON_NODE_OBJECT);
  json_node_take_object(n, o);
  return n;
}

JsonNode *live_input_list_item(const LiveInputRecord &r) {
  JsonObject *o = json_object_new();
  json_object_set_string_member(o, "uid", r.uid.c_str());
  json_object_set_string_member(o, "created", r.created.c_str());
  json_object_set_string_member(o, "modified", r.modified.c_str());
  json_object_set_member(o, "meta", meta_node(r.meta_json));
  json_object_set_boolean_member(o, "enabled", r.enabled);
  set_optional_int(o, "deleteRecordingAfterDays", r.delete_recording_after_days);
  JsonNode *n = json_node_new(JSON_NODE_OBJECT);
  json_node_take_object(n, o);
  return n;
}

std::string envelope_success(JsonNode *result) { return envelope(result, true, 0, ""); }

std::string envelope_error(int code, const std::string &message) {
  return envelope(nullptr, false, code, message);
}

}  // namespace server
