// The JSON side of the live-input API: parse and validate request bodies,
// build result objects with Cloudflare Stream's field names and types, wrap
// them in the API envelope. Pure (json-glib only): no I/O, no GStreamer, so it
// can be fuzzed on its own.
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include <optional>
#include <string>
#include <vector>

#include "config.h"
#include "store.h"

namespace server {

// What a POST (create) or PUT (update) body sets. Absent fields keep their
// value on update and take the default on create; unknown fields are ignored,
// as the hosted API does (its SDK sends e.g. defaultCreator).
struct InputFields {
  std::optional<std::string> meta_json;
  std::optional<bool> enabled;
  std::optional<bool> prefer_low_latency;
  std::optional<std::string> recording_mode;
  std::optional<gint64> recording_timeout_seconds;
  std::optional<bool> recording_require_signed_urls;
  std::optional<std::optional<std::vector<std::string>>> recording_allowed_origins;
  std::optional<std::optional<gint64>> delete_recording_after_days;

  void apply_to(LiveInputRecord *record) const;
};

// Parses and validates a request body. An empty body is "{}". On failure,
// *error says in plain words what is wrong (the json-glib parse error for
// malformed JSON).
bool parse_input_fields(const char *data, gsize size, const Limits &limits, InputFields *out,
                        std::string *error);

// Live state that is not stored: the server adds it to every result.
struct LiveState {
  std::optional<std::string> status;
  guint live_viewers = 0;
};

// The full live-input object (GET/POST/PUT result). `public_url` has no
// trailing slash.
JsonNode *live_input_to_json(const LiveInputRecord &r, const LiveState &live,
                             const std::string &public_url);
// The short form used in the list result.
JsonNode *live_input_list_item(const LiveInputRecord &r);

std::string publish_url(const std::string &public_url, const LiveInputRecord &r);
std::string playback_url(const std::string &public_url, const LiveInputRecord &r);

// Cloudflare-style error codes we use in errors[].code.
enum ApiErrorCode {
  kErrAuthentication = 10000,
  kErrBadRequest = 10001,
  kErrNotFound = 10003,
  kErrMethodNotAllowed = 10004,
  kErrUnsupportedMediaType = 10005,
  kErrTooLarge = 10006,
  kErrLimit = 10007,
  kErrInternal = 10008,
};

// {"result": result|null, "success": true, "errors": [], "messages": []}.
// Takes ownership of `result` (may be null).
std::string envelope_success(JsonNode *result);
// {"result": null, "success": false, "errors": [{code, message}], "messages": []}.
std::string envelope_error(int code, const std::string &message);

}  // namespace server
