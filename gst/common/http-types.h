// The embedding contract between whoever owns an HTTP socket and the server
// elements (whipserversrc, whepserversink). See README.md in this folder.
#pragma once

#include <gst/gst.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "gobj.h"

namespace whipwhep {

struct HttpRequest {
  std::string method;         // "POST", "DELETE", "PATCH", "OPTIONS", ...
  std::string session;        // session id for DELETE/PATCH; empty for POST
  std::string content_type;   // lowercased media type, parameters stripped
  std::string authorization;  // raw Authorization header, may be empty
  std::string if_match;       // raw If-Match header, may be empty
  gobj::Ref<GBytes> body;     // may be null

  std::string body_string() const;
};

struct HttpResponse {
  guint status = 500;
  std::string content_type;  // empty: no body type
  std::string body;
  std::string session;       // on 201: the new session id
  std::string etag;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers

  // A short plain-text answer: text/plain body with the reason.
  static HttpResponse text(guint status, std::string reason);
  const std::string *header(const std::string &name) const;
};

// GstStructure forms ("whipwhep/request", "whipwhep/response").
GstStructure *request_to_structure(const HttpRequest &req);  // transfer full
bool request_from_structure(const GstStructure *s, HttpRequest *out);
GstStructure *response_to_structure(const HttpResponse &resp);  // transfer full
HttpResponse response_from_structure(const GstStructure *s);

using ResponseCallback = std::function<void(HttpResponse)>;

// Emits "handle-request" on `element` and calls `done` exactly once on
// `reply_context` (nullptr: the thread-default context of the caller, or the
// global default context) with the element's response. If the element has no
// such signal or never answers within `timeout_ms`, `done` gets a 500/504.
void submit_request(GstElement *element, const HttpRequest &req,
                    GMainContext *reply_context, ResponseCallback done,
                    guint timeout_ms = 15000);

// Reply to a handle-request promise (used by the elements).
void reply(GstPromise *promise, const HttpResponse &resp);

// 32 lowercase hex characters from 128 random bits (g_random).
std::string random_id_hex128();

// Constant-time comparison of "Bearer <token>" against an expected token.
bool bearer_matches(const std::string &authorization, const std::string &token);

// Lowercase the media type and strip parameters: "Application/SDP; x=y" ->
// "application/sdp".
std::string normalize_media_type(const char *content_type);

}  // namespace whipwhep
