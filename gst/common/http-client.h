// WHIP/WHEP client signalling over HTTP (RFC 9725 §4): POST the offer with
// an optional Bearer token, follow 307/308 keeping method, body and token,
// read 201 + Location (resolved against the final request URL) + ETag +
// `Link: rel="ice-server"`, PATCH trickle fragments, DELETE the session.
//
// Threads: the SoupSession lives on whipwhep::signalling_context() and is
// only touched there; callbacks run on that thread and must not block. Every
// request (redirects included) is bounded by the client's timeout.
#pragma once

#include <glib.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace whipwhep {

struct HttpResult {
  guint status = 0;          // 0: no HTTP answer (see `error`)
  std::string error;         // transport failure or timeout, when status == 0
  std::string reason;        // the server's reason (body text or reason phrase)
  std::string body;
  std::string content_type;  // normalised media type
  std::string url;           // URL of the final request (after redirects)
  std::string location;      // Location resolved to an absolute URL, or ""
  std::string etag;
  guint retry_after_s = 0;   // Retry-After in seconds (0: absent or an HTTP date)
  std::vector<std::string> ice_servers;  // from Link rel="ice-server", webrtcbin form
  bool authorization_sent = false;

  bool ok() const { return status >= 200 && status < 300; }
  // One line for an element error: names method, URL, status and reason.
  std::string describe(const std::string &method) const;
};

using HttpResultCallback = std::function<void(HttpResult)>;

class HttpClient {
 public:
  // timeout_s bounds each request from start to answer, redirects included.
  HttpClient(std::string auth_token, guint timeout_s);
  // Cancels every request in flight; no callback runs after it returns.
  ~HttpClient();
  HttpClient(const HttpClient &) = delete;
  HttpClient &operator=(const HttpClient &) = delete;

  void post_sdp(const std::string &url, const std::string &sdp, HttpResultCallback done);
  void patch_sdpfrag(const std::string &url, const std::string &fragment,
                     const std::string &etag, HttpResultCallback done);
  void delete_resource(const std::string &url, HttpResultCallback done);
  // Waits (at most the timeout, plus a small margin) for the DELETE to be
  // answered. For change_state: the DELETE really leaves before the process
  // may exit. Must not be called on the signalling thread.
  HttpResult delete_resource_sync(const std::string &url);

  guint timeout_s() const;

  struct Core;

 private:
  std::shared_ptr<Core> core_;
};

}  // namespace whipwhep
