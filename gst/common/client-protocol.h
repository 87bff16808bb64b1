// Pure WHIP/WHEP client protocol rules (no I/O, no GObject state): how a
// Location header is resolved, which statuses are redirects, how an HTTP
// failure is worded for an element error. Unit-tested in
// tests/unit/client_protocol_test.cpp.
#pragma once

#include <glib.h>

#include <string>

namespace whipwhep {

// Resolve a Location (or redirect target) against the URL of the request that
// produced it. Absolute URLs are returned normalised; relative ones ("/x",
// "x", "../x", "//host/x") per RFC 3986. Empty string if either is invalid.
std::string resolve_location(const std::string &request_url, const std::string &location);

// 307 and 308 keep method and body (RFC 9110 §15.4.8/9): the only redirects a
// WHIP/WHEP client follows for a POST.
bool is_method_preserving_redirect(guint status);

// Maximum number of redirects followed for one request.
constexpr int kMaxRedirects = 5;

// The server's reason for a failure, from its response: the first line of a
// short text body, else the HTTP reason phrase, else the standard phrase.
std::string server_reason(guint status, const std::string &reason_phrase,
                          const std::string &body);

// "POST http://x/whip: 401 Unauthorized: token expired" style message for an
// element error.
std::string describe_http_failure(const std::string &method, const std::string &url,
                                  guint status, const std::string &reason);

// Only http and https URLs are usable endpoints.
bool is_http_url(const std::string &url);

}  // namespace whipwhep
