#include "live-inputs.h"

#include "common/offer-checks.h"
#include "common/webrtc-negotiation.h"

GST_DEBUG_CATEGORY_STATIC(live_inputs_debug);
#define GST_CAT_DEFAULT live_inputs_debug

namespace server {

namespace {

constexpr const char *kConnected = "connected";
constexpr const char *kClientDisconnect = "client_disconnect";
// A viewer arriving just as a publisher goes live: up to 2 s of retries.
constexpr int kPlayRetries = 20;
constexpr guint kPlayRetryIntervalMs = 100;

ApiError api_error(guint status, int code, std::string message) {
  return ApiError{status, code, std::move(message)};
}

whipwhep::HttpResponse with_header(whipwhep::HttpResponse r, const char *name,
                                   const char *value) {
  r.headers.emplace_back(name, value);
  return r;
}

// Offers WebRTC forbids or we do not serve (gst/common/offer-checks.h) are
// refused before a pipeline or a webrtcbin exists for them: webrtcbin would
// answer some of them, and a WHIP session would hold the input's publisher
// slot for an offer that can never connect.
bool refused_bad_offer(const whipwhep::HttpRequest &req, whipwhep::ResponseCallback &done) {
  if (req.method != "POST" || !req.session.empty() || !req.body ||
      req.content_type != "application/sdp")
    return false;
  std::string why;
  gobj::Unique<GstSDPMessage> offer(whipwhep::parse_sdp(req.body_string(), &why));
  const guint status = offer ? whipwhep::check_offer(offer.get(), &why) : 400;
  if (!status) return false;
  done(whipwhep::HttpResponse::text(status, why));
  return true;
}

}  // namespace

LiveInputs::LiveInputs(const Config &config, Store &store) : config_(config), store_(store) {
  static gsize once = 0;
  if (g_once_init_enter(&once)) {
    GST_DEBUG_CATEGORY_INIT(live_inputs_debug, "whip-server-inputs", 0, "live-input registry");
    g_once_init_leave(&once, 1);
  }
  // A publisher cannot be live across a restart: what was "connected" when
  // the process died is a dropped publisher now.
  for (const auto &r : store_.list())
    if (r.status && *r.status == kConnected) record_status(r.uid, std::string(kClientDisconnect));
}

LiveInputs::~LiveInputs() { shutdown(); }

void LiveInputs::shutdown() {
  while (!running_.empty()) stop(running_.begin()->first);
}

std::optional<LiveInputRecord> LiveInputs::create(const InputFields &fields, ApiError *error) {
  if (store_.count() >= static_cast<gint64>(config_.limits.max_live_inputs)) {
    *error = api_error(429, kErrLimit,
                       "this server holds its maximum of " +
                           std::to_string(config_.limits.max_live_inputs) +
                           " live inputs; delete one first");
    return std::nullopt;
  }
  LiveInputRecord r;
  r.uid = whipwhep::random_id_hex128();
  // A separate 128-bit secret: knowing the uid (public, in the playback URL)
  // grants nothing.
  r.secret = whipwhep::random_id_hex128();
  r.created = r.modified = rfc3339_now();
  fields.apply_to(&r);
  g_autoptr(GError) err = nullptr;
  if (!store_.insert(r, &err)) {
    g_warning("creating a live input failed: %s", err->message);
    *error = api_error(500, kErrInternal, "the live input could not be stored");
    return std::nullopt;
  }
  GST_INFO("created live input %s", r.uid.c_str());
  return r;
}

std::vector<LiveInputRecord> LiveInputs::list() { return store_.list(); }

std::optional<LiveInputRecord> LiveInputs::get(const std::string &uid) { return store_.get(uid); }

std::optional<LiveInputRecord> LiveInputs::update(const std::string &uid,
                                                  const InputFields &fields, ApiError *error) {
  auto r = store_.get(uid);
  if (!r) {
    *error = api_error(404, kErrNotFound, "no live input with uid " + uid);
    return std::nullopt;
  }
  fields.apply_to(&*r);
  r->modified = rfc3339_now();
  g_autoptr(GError) err = nullptr;
  if (!store_.update(*r, &err)) {
    g_warning("updating live input %s failed: %s", uid.c_str(), err->message);
    *error = api_error(500, kErrInternal, "the live input could not be stored");
    return std::nullopt;
  }
  // Disabling an input ends what is running on it.
  if (!r->enabled) stop(uid);
  return r;
}

bool LiveInputs::remove(const std::string &uid, ApiError *error) {
  if (!store_.get(uid)) {
    *error = api_error(404, kErrNotFound, "no live input with uid " + uid);
    return false;
  }
  stop(uid);
  g_autoptr(GError) err = nullptr;
  if (!store_.remove(uid, &err)) {
    g_warning("deleting live input %s failed: %s", uid.c_str(), err->message);
    *error = api_error(500, kErrInternal, "the live input could not be deleted");
    return false;
  }
  status_.erase(uid);
  GST_INFO("deleted live input %s", uid.c_str());
  return true;
}

void LiveInputs::record_status(const std::string &uid, const std::optional<std::string> &status) {
  auto it = status_.find(uid);
  if (it != status_.end() && it->second == status) return;
  status_[uid] = status;
  g_autoptr(GError) err = nullptr;
  if (!store_.set_status(uid, status, &err))
    g_warning("storing the status of %s failed: %s", uid.c_str(), err->message);
}

LiveState LiveInputs::live_state(const std::string &uid) {
  LiveState s;
  auto st = status_.find(uid);
  if (st == status_.end()) {
    auto r = store_.get(uid);
    st = status_.emplace(uid, r ? r->status : std::nullopt).first;
  }
  bool live = false;
  auto it = running_.find(uid);
  if (it != running_.end()) {
    live = it->second.pipeline->publisher_live().value_or(it->second.publisher_live_by_http);
    s.live_viewers = it->second.pipeline->viewer_count();
  }
  if (live)
    record_status(uid, std::string(kConnected));
  else if (st->second && *st->second == kConnected)
    record_status(uid, std::string(kClientDisconnect));
  s.status = status_[uid];
  return s;
}

LiveInputs::Running *LiveInputs::ensure_running(const std::string &uid, GError **error) {
  auto it = running_.find(uid);
  if (it != running_.end()) return &it->second;
  InputPipeline::Callbacks callbacks;
  // The pipeline is identified by pointer: a failure report from a pipeline
  // that was already replaced must not stop its successor.
  auto holder = std::make_shared<InputPipeline *>(nullptr);
  callbacks.failed = [this, uid, holder](const std::string &why) {
    on_pipeline_failed(uid, *holder, why);
  };
  auto pipeline = InputPipeline::create(uid, config_, std::move(callbacks), error);
  if (!pipeline) return nullptr;
  *holder = pipeline.get();
  Running &running = running_[uid];
  running.pipeline = std::move(pipeline);
  return &running;
}

void LiveInputs::stop(const std::string &uid_ref) {
  // Copy: callers may pass a reference to the map key erased below.
  const std::string uid = uid_ref;
  auto it = running_.find(uid);
  if (it == running_.end()) return;
  // Detach before destroying: responses still in flight find no pipeline.
  std::unique_ptr<InputPipeline> pipeline = std::move(it->second.pipeline);
  running_.erase(it);
  pipeline.reset();
  auto st = status_.find(uid);
  if (st != status_.end() && st->second && *st->second == kConnected)
    record_status(uid, std::string(kClientDisconnect));
}

void LiveInputs::on_pipeline_failed(const std::string &uid, InputPipeline *which,
                                    const std::string &why) {
  auto it = running_.find(uid);
  if (it == running_.end() || it->second.pipeline.get() != which) return;
  g_warning("live input %s: dropping its pipeline after an error (%s); the next "
            "publish or play starts a new one",
            uid.c_str(), why.c_str());
  stop(uid);
}

void LiveInputs::publish(const std::string &secret, const whipwhep::HttpRequest &req,
                         whipwhep::ResponseCallback done) {
  auto r = store_.get_by_secret(secret);
  if (!r) {
    done(whipwhep::HttpResponse::text(404, "no live input has this publish URL"));
    return;
  }
  const bool is_new_session = req.session.empty();
  if (is_new_session && req.method == "POST" && !r->enabled) {
    done(whipwhep::HttpResponse::text(403, "this live input is disabled"));
    return;
  }
  if (refused_bad_offer(req, done)) return;
  if (!is_new_session && running_.find(r->uid) == running_.end()) {
    done(whipwhep::HttpResponse::text(404, "no such session"));
    return;
  }
  g_autoptr(GError) err = nullptr;
  Running *running = ensure_running(r->uid, &err);
  if (!running) {
    g_warning("live input %s: cannot start its pipeline: %s", r->uid.c_str(),
              err ? err->message : "?");
    done(whipwhep::HttpResponse::text(500, "the live input's media pipeline could not start"));
    return;
  }
  const std::string uid = r->uid;
  const std::string method = req.method;
  InputPipeline *pipeline = running->pipeline.get();
  pipeline->submit_publish(
      req, [this, uid, method, is_new_session, pipeline,
            done = std::move(done)](whipwhep::HttpResponse resp) {
        auto it = running_.find(uid);
        if (it != running_.end() && it->second.pipeline.get() == pipeline) {
          if (is_new_session && method == "POST" && resp.status == 201) {
            it->second.publisher_live_by_http = true;
            record_status(uid, std::string(kConnected));
          } else if (!is_new_session && method == "DELETE" && resp.status == 200) {
            it->second.publisher_live_by_http = false;
            record_status(uid, std::string(kClientDisconnect));
          }
        }
        done(std::move(resp));
      });
}

void LiveInputs::play(const std::string &uid, const whipwhep::HttpRequest &req,
                      whipwhep::ResponseCallback done) {
  auto r = store_.get(uid);
  if (!r) {
    done(whipwhep::HttpResponse::text(404, "no live input with this uid"));
    return;
  }
  const bool is_new_session = req.session.empty();
  auto it = running_.find(uid);
  if (is_new_session && req.method == "POST") {
    if (!r->enabled) {
      done(whipwhep::HttpResponse::text(403, "this live input is disabled"));
      return;
    }
    if (r->recording.require_signed_urls) {
      done(whipwhep::HttpResponse::text(
          403, "this live input requires signed playback URLs, which this server does not issue"));
      return;
    }
    if (it != running_.end() &&
        it->second.pipeline->viewer_count() >= config_.limits.max_viewers_per_input) {
      done(with_header(
          whipwhep::HttpResponse::text(503, "this live input has its maximum number of viewers"),
          "Retry-After", "10"));
      return;
    }
  }
  if (refused_bad_offer(req, done)) return;
  if (!is_new_session && it == running_.end()) {
    done(whipwhep::HttpResponse::text(404, "no such session"));
    return;
  }
  g_autoptr(GError) err = nullptr;
  Running *running = ensure_running(uid, &err);
  if (!running) {
    g_warning("live input %s: cannot start its pipeline: %s", uid.c_str(),
              err ? err->message : "?");
    done(whipwhep::HttpResponse::text(500, "the live input's media pipeline could not start"));
    return;
  }
  submit_play(uid, running->pipeline.get(), req, std::move(done), kPlayRetries);
}

void LiveInputs::submit_play(const std::string &uid, InputPipeline *pipeline,
                             const whipwhep::HttpRequest &req, whipwhep::ResponseCallback done,
                             int retries_left) {
  // A new viewer waits (bounded) for a publisher whose every stream is up:
  // while one is coming up, whepserversink may know its audio but not yet
  // its video, and a viewer answered then would get video inactive for good.
  const bool live = pipeline->publisher_live().value_or(false);
  if (req.session.empty() && !live) {
    if (retries_left <= 0) {
      done(with_header(whipwhep::HttpResponse::text(
                           503, "no publisher yet: nobody is publishing to this live input"),
                       "Retry-After", "2"));
      return;
    }
    retry_play_later(uid, pipeline, req, std::move(done), retries_left - 1);
    return;
  }
  pipeline->submit_play(req, [this, uid, pipeline, req, retries_left,
                              done = std::move(done)](whipwhep::HttpResponse resp) mutable {
    // whepserversink answers 503 until every stream's codec is known; right
    // after a publisher goes live that is a matter of milliseconds. Rather
    // than sending the viewer away, ask again shortly while the publisher
    // is live (bounded).
    auto it = running_.find(uid);
    const bool same = it != running_.end() && it->second.pipeline.get() == pipeline;
    if (resp.status == 503 && retries_left > 0 && req.session.empty() && same &&
        pipeline->publisher_live().value_or(false)) {
      retry_play_later(uid, pipeline, req, std::move(done), retries_left - 1);
      return;
    }
    done(std::move(resp));
  });
}


void LiveInputs::retry_play_later(const std::string &uid, InputPipeline *pipeline,
                                  const whipwhep::HttpRequest &req,
                                  whipwhep::ResponseCallback done, int retries_left) {
  struct Retry {
    LiveInputs *self;
    std::string uid;
    InputPipeline *pipeline;
    whipwhep::HttpRequest req;
    whipwhep::ResponseCallback done;
    int retries_left;
  };
  auto *retry = new Retry{this, uid, pipeline, req, std::move(done), retries_left};
  g_timeout_add_full(
      G_PRIORITY_DEFAULT, kPlayRetryIntervalMs,
      +[](gpointer data) -> gboolean {
        auto *r = static_cast<Retry *>(data);
        auto it = r->self->running_.find(r->uid);
        if (it == r->self->running_.end() || it->second.pipeline.get() != r->pipeline)
          r->done(whipwhep::HttpResponse::text(404, "the live input stopped"));
        else
          r->self->submit_play(r->uid, r->pipeline, r->req, std::move(r->done), r->retries_left);
        return G_SOURCE_REMOVE;
      },
      retry, +[](gpointer data) { delete static_cast<Retry *>(data); });
}

}  // namespace server
