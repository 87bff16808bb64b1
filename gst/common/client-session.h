// One WHIP/WHEP client session around one webrtcbin, shared by whipsink and
// whepsrc: ICE configuration, offer -> POST -> answer, Link ICE servers,
// DELETE on end, and every failure (HTTP status, transport, ICE/DTLS,
// connect timeout) turned into ONE element error on the owner.
//
// Threads: negotiate()/end_async() never block; end_sync() waits at most the
// timeout (for change_state). Callbacks hold the session by shared_ptr and
// the owner by GWeakRef, so they are safe after the element is gone.
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "gobj.h"
#include "http-client.h"

namespace whipwhep {

struct ClientConfig {
  std::string protocol = "WHIP";  // for messages: "WHIP" or "WHEP"
  std::string endpoint;
  std::string auth_token;
  std::string stun_server;
  std::string turn_server;
  std::string ice_addresses;  // comma-separated
  bool use_link_headers = true;
  guint timeout_s = 10;
  // Seconds without any RTCP from the server, once connected, before the
  // session counts as ended by the server (deleted input, server gone);
  // libnice in webrtcbin has no consent freshness to tell us. 0 = never.
  guint rtcp_timeout_s = 20;
  // Seconds to keep re-POSTing the offer while the server answers 503 or
  // 429 (or 409 with Retry-After: a WHEP stream that is not live yet, a
  // server over a limit), waiting what Retry-After says. 0 = fail at once.
  guint retry_timeout_s = 0;
};

// The clients' "retry-timeout" property (ClientConfig::retry_timeout_s);
// `example` says when a server of this protocol asks to come back later.
GParamSpec *retry_timeout_param_spec(const char *example);

class ClientSession : public std::enable_shared_from_this<ClientSession> {
 public:
  // Validates the config and applies configure_ice() to `webrtcbin` (before
  // it gathers). nullptr + *error (a settings problem) on failure.
  static std::shared_ptr<ClientSession> create(GstElement *owner, GstElement *webrtcbin,
                                               const ClientConfig &config, std::string *error);
  ~ClientSession();
  ClientSession(const ClientSession &) = delete;
  ClientSession &operator=(const ClientSession &) = delete;

  // create-offer -> gathering complete -> POST -> set-remote-description.
  // Runs once; later calls do nothing.
  void negotiate();
  // DELETE the session resource, if any, without waiting (EOS, error).
  // `done` (optional) runs on the signalling thread once the DELETE was
  // answered or failed, or at once when there is nothing to delete.
  void end_async(std::function<void()> done = nullptr);
  // DELETE and wait for the answer, at most the timeout; then stop reacting
  // to webrtcbin (change_state PAUSED->READY).
  void end_sync();
  // Post one element error on the owner (only the first failure is posted)
  // and DELETE the session.
  void fail(GQuark domain, gint code, const std::string &message, const std::string &debug,
            guint http_status = 0);

  std::string resource_url() const;
  bool connected() const { return connected_.load(); }

 private:
  ClientSession() = default;
  void on_offer(bool ok, std::string sdp);
  void post_offer();
  void on_post_answer(HttpResult r);
  // Schedules another POST of the offer if `r` asks to come back later and
  // the retry budget allows; false if the answer is final.
  bool retry_later(const HttpResult &r);
  // Runs `fn` once on the signalling thread after `ms`, if the session
  // still exists then (the timer holds it weakly).
  void after_ms(guint ms, std::function<void(ClientSession &)> fn);
  void on_connection_state();
  void start_connect_timer();
  void watch_rtcp();
  void check_liveness();

  GWeakRef owner_;
  gobj::Ref<GstElement> webrtcbin_;
  ClientConfig config_;
  std::unique_ptr<HttpClient> http_;
  gulong state_handler_ = 0;
  gulong ice_handler_ = 0;
  gobj::Ref<GObject> rtp_session_;  // webrtcbin's internal RTPSession (bundle: id 0)
  gulong rtcp_handler_ = 0;
  std::atomic<gint64> last_rtcp_us_{0};
  std::atomic<bool> watching_rtcp_{false};
  // Set once in on_offer() before the first POST, read by retries on the
  // signalling thread (the POST's hand-over to that thread orders them).
  std::string offer_sdp_;
  gint64 first_post_us_ = 0;
  guint retries_ = 0;  // signalling thread only

  mutable std::mutex lock_;
  std::string resource_url_;
  std::string etag_;
  bool negotiating_ = false;
  std::atomic<bool> failed_{false};
  std::atomic<bool> closed_{false};
  std::atomic<bool> connected_{false};
};

}  // namespace whipwhep
