// The registry of live inputs: the durable records (Store) plus, for inputs
// in use, their media pipelines. Every WHIP/WHEP request reaches a pipeline
// only through here, so deleting an input reliably ends its sessions.
//
// Single-context actor: every method runs on the server's main context.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/http-types.h"
#include "config.h"
#include "input-pipeline.h"
#include "live-input-json.h"
#include "store.h"

namespace server {

struct ApiError {
  guint http_status = 500;
  int code = kErrInternal;
  std::string message;
};

class LiveInputs {
 public:
  LiveInputs(const Config &config, Store &store);
  ~LiveInputs();
  LiveInputs(const LiveInputs &) = delete;
  LiveInputs &operator=(const LiveInputs &) = delete;

  // --- the API ---
  std::optional<LiveInputRecord> create(const InputFields &fields, ApiError *error);
  std::vector<LiveInputRecord> list();
  std::optional<LiveInputRecord> get(const std::string &uid);
  std::optional<LiveInputRecord> update(const std::string &uid, const InputFields &fields,
                                        ApiError *error);
  // Ends the input's sessions, stops its pipeline, forgets it.
  bool remove(const std::string &uid, ApiError *error);
  LiveState live_state(const std::string &uid);

  // --- WHIP / WHEP ---
  // `req.session` empty: POST to the endpoint; otherwise a session resource.
  // `done` runs on the main context, possibly before this returns.
  void publish(const std::string &secret, const whipwhep::HttpRequest &req,
               whipwhep::ResponseCallback done);
  void play(const std::string &uid, const whipwhep::HttpRequest &req,
            whipwhep::ResponseCallback done);

  // Stops every pipeline (SIGINT/SIGTERM): every session ends.
  void shutdown();

 private:
  struct Running {
    std::unique_ptr<InputPipeline> pipeline;
    // Publisher state as seen over HTTP (POST 201 .. DELETE 200), used when
    // the element does not report it.
    bool publisher_live_by_http = false;
  };

  Running *ensure_running(const std::string &uid, GError **error);
  // Ask again in kPlayRetryIntervalMs (the input's pipeline may be gone by then).
  void retry_play_later(const std::string &uid, InputPipeline *pipeline,
                        const whipwhep::HttpRequest &req, whipwhep::ResponseCallback done,
                        int retries_left);
  void submit_play(const std::string &uid, InputPipeline *pipeline,
                   const whipwhep::HttpRequest &req, whipwhep::ResponseCallback done,
                   int retries_left);
  void stop(const std::string &uid);
  void on_pipeline_failed(const std::string &uid, InputPipeline *which, const std::string &why);
  void record_status(const std::string &uid, const std::optional<std::string> &status);

  const Config &config_;
  Store &store_;
  std::map<std::string, Running> running_;  // by uid
  // Last known status per uid (also stored); null when never used.
  std::map<std::string, std::optional<std::string>> status_;
};

}  // namespace server
