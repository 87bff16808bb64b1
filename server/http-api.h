// The server's one HTTP listener (libsoup 3): the Cloudflare-compatible
// live-input API under /client/v4/accounts/{account_id}/stream/live_inputs,
// and WHIP/WHEP under /{secret}/webRTC/publish[/{session}] and
// /{uid}/webRTC/play[/{session}]. Routing, authentication, CORS, body limits
// and content types live here; what a request means lives in LiveInputs.
//
// Runs on the main context (the one current when listen() is called).
#pragma once

#include <libsoup/soup.h>

#include <string>
#include <vector>

#include "common/gobj.h"
#include "config.h"
#include "live-inputs.h"

namespace server {

// The drafts named in the protocol-version response header.
inline constexpr const char *kProtocolVersion = "rfc9725, draft-ietf-wish-whep-02";

class HttpApi {
 public:
  // `config.public_url` is read per request, so it may be filled in after
  // listen() when the port was chosen by the system.
  HttpApi(const Config &config, std::vector<std::string> api_tokens, std::string account_id,
          LiveInputs &inputs);
  ~HttpApi();
  HttpApi(const HttpApi &) = delete;
  HttpApi &operator=(const HttpApi &) = delete;

  bool listen(GError **error);
  // http://host:port of the bound socket (valid after listen()).
  std::string bound_url() const { return bound_url_; }
  // Closes the listener and every connection.
  void disconnect();

  std::string api_base_path() const;  // /client/v4/accounts/{id}/stream

 private:
  static void on_early(SoupServer *, SoupServerMessage *msg, const char *path, GHashTable *,
                       gpointer self);
  static void on_request(SoupServer *, SoupServerMessage *msg, const char *path, GHashTable *,
                         gpointer self);
  static void on_got_chunk(SoupServerMessage *msg, GBytes *chunk, gpointer self);
  static void on_request_started(SoupServer *, SoupServerMessage *msg, gpointer self);
  // Refuses a request before its body is read (headers or body over a
  // limit): the body is drained, not kept, and the connection closes.
  void refuse_early(SoupServerMessage *msg, const char *path, guint status,
                    const std::string &text);

  void handle_api(SoupServerMessage *msg, const std::vector<std::string> &segments);
  void handle_media(SoupServerMessage *msg, const std::string &key, bool publish,
                    const std::string &session);
  void preflight(SoupServerMessage *msg, const char *methods, bool with_ice_links);
  void add_common_headers(SoupServerMessage *msg, bool media);
  void add_ice_links(SoupMessageHeaders *headers);
  bool authorised(SoupServerMessage *msg);

  void reply_json(SoupServerMessage *msg, guint status, const std::string &body);
  void reply_api_error(SoupServerMessage *msg, guint status, int code, const std::string &text);
  void reply_text(SoupServerMessage *msg, guint status, const std::string &text);

  const Config &config_;
  std::vector<std::string> api_tokens_;
  std::string account_id_;
  LiveInputs &inputs_;
  gobj::Ref<SoupServer> server_;
  std::string bound_url_;
};

// Splits a decoded path on '/' dropping empty segments: "/a//b/" -> {a, b}.
std::vector<std::string> split_path(const char *path);
// 32 lowercase hex characters: the only form uids, secrets and session ids take.
bool is_id(const std::string &s);

}  // namespace server
