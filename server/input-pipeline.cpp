#include "input-pipeline.h"

#include <gst/base/gstbasesink.h>

#include <vector>

GST_DEBUG_CATEGORY_STATIC(input_pipeline_debug);
#define GST_CAT_DEFAULT input_pipeline_debug

namespace server {

namespace {

bool has_property(GstElement *element, const char *name) {
  return element && g_object_class_find_property(G_OBJECT_GET_CLASS(element), name) != nullptr;
}

// whipserversrc's read-only "publishing": a publisher is connected and
// sending media.
constexpr const char *kPublisherProperties[] = {"publishing"};

// How long stopping an input waits for its recordings to be written out.
constexpr gint64 kFinaliseTimeoutUs = 3 * G_USEC_PER_SEC;

// The pure relay: a src pad of whipserversrc that the template leaves
// unlinked goes through a queue into the whepserversink request pad of the
// same name ("video_0" -> sink.video_0). Done when the pad appears, so a sink
// pad exists only for streams a publisher actually sends (whepserversink
// answers viewers only once every sink pad knows its codec).
//
// Runs on a streaming thread; touches only the pad's own pipeline.
void relay_unlinked_pad(GstElement *src, GstPad *pad, gpointer) {
  if (GST_PAD_DIRECTION(pad) != GST_PAD_SRC || gst_pad_is_linked(pad)) return;
  gobj::Ref<GstObject> parent = gobj::adopt(gst_object_get_parent(GST_OBJECT(src)));
  if (!parent || !GST_IS_BIN(parent.get())) return;
  GstBin *bin = GST_BIN(parent.get());
  gobj::Ref<GstElement> sink = gobj::adopt(gst_bin_get_by_name(bin, kSinkName));
  if (!sink) return;
  const gchar *name = GST_PAD_NAME(pad);
  gobj::Ref<GstPad> sink_pad = gobj::adopt(gst_element_request_pad_simple(sink.get(), name));
  if (!sink_pad) {
    GST_WARNING_OBJECT(src, "whepserversink has no pad %s: stream not relayed", name);
    return;
  }
  GstElement *queue = gst_element_factory_make("queue", nullptr);
  // Never let a stalled branch hold up the publisher: at most 1 s queued,
  // oldest dropped (the next keyframe repairs the picture).
  g_object_set(queue, "max-size-buffers", 0u, "max-size-bytes", 0u, "max-size-time",
               static_cast<guint64>(GST_SECOND), nullptr);
  gst_util_set_object_arg(G_OBJECT(queue), "leaky", "downstream");
  gst_bin_add(bin, queue);
  gobj::Ref<GstPad> qsink = gobj::adopt(gst_element_get_static_pad(queue, "sink"));
  gobj::Ref<GstPad> qsrc = gobj::adopt(gst_element_get_static_pad(queue, "src"));
  if (gst_pad_link(qsrc.get(), sink_pad.get()) != GST_PAD_LINK_OK ||
      !gst_element_sync_state_with_parent(queue) ||
      gst_pad_link(pad, qsink.get()) != GST_PAD_LINK_OK) {
    GST_WARNING_OBJECT(src, "could not relay %s to the sink", name);
    return;
  }
  GST_INFO_OBJECT(src, "relaying %s to %s", name, GST_PAD_NAME(sink_pad.get()));
}

}  // namespace

InputPipeline::InputPipeline(std::string uid, Callbacks callbacks)
    : uid_(std::move(uid)), callbacks_(std::move(callbacks)) {}

std::unique_ptr<InputPipeline> InputPipeline::create(const std::string &uid,
                                                     const Config &config, Callbacks callbacks,
                                                     GError **error) {
  static gsize debug_once = 0;
  if (g_once_init_enter(&debug_once)) {
    GST_DEBUG_CATEGORY_INIT(input_pipeline_debug, "whip-server", 0, "whipwhep-server pipelines");
    g_once_init_leave(&debug_once, 1);
  }

  std::unique_ptr<InputPipeline> self(new InputPipeline(uid, std::move(callbacks)));
  // The template was validated at start-up; it is operator text, never
  // anything from a request.
  const std::string description =
      expand_pipeline_template(config.pipeline_template, uid, config.data_dir);
  self->pipeline_ = gobj::sink(
      gst_parse_launch_full(description.c_str(), nullptr, GST_PARSE_FLAG_FATAL_ERRORS, error));
  if (!self->pipeline_ || !GST_IS_PIPELINE(self->pipeline_.get())) {
    if (self->pipeline_) {
      g_set_error(error, GST_CORE_ERROR, GST_CORE_ERROR_FAILED,
                  "pipeline template did not produce a pipeline");
      gst_element_set_state(self->pipeline_.get(), GST_STATE_NULL);
    }
    return nullptr;
  }
  g_autofree gchar *name = g_strdup_printf("live-input-%s", uid.c_str());
  gst_object_set_name(GST_OBJECT(self->pipeline_.get()), name);

  GstBin *bin = GST_BIN(self->pipeline_.get());
  self->src_ = gobj::adopt(gst_bin_get_by_name(bin, kSourceName));
  self->sink_ = gobj::adopt(gst_bin_get_by_name(bin, kSinkName));
  if (!self->src_ || !self->sink_) {
    g_set_error(error, GST_CORE_ERROR, GST_CORE_ERROR_FAILED,
                "pipeline template lacks \"%s\" or \"%s\"", kSourceName, kSinkName);
    gst_element_set_state(self->pipeline_.get(), GST_STATE_NULL);
    return nullptr;
  }
  self->configure_element(self->src_.get(), config);
  self->configure_element(self->sink_.get(), config);
  if (has_property(self->sink_.get(), "max-viewers"))
    g_object_set(self->sink_.get(), "max-viewers", config.limits.max_viewers_per_input, nullptr);

  // Connected after gst_parse_launch's own delayed-link handlers: a pad the
  // template links explicitly is already linked when ours runs.
  g_signal_connect(self->src_.get(), "pad-added", G_CALLBACK(&relay_unlinked_pad), nullptr);

  gobj::Ref<GstBus> bus = gobj::adopt(gst_element_get_bus(self->pipeline_.get()));
  // The watch is on the thread-default context: the server's main context.
  self->bus_watch_ = gst_bus_add_watch(bus.get(), &InputPipeline::on_bus_message, self.get());

  if (gst_element_set_state(self->pipeline_.get(), GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE) {
    g_set_error(error, GST_CORE_ERROR, GST_CORE_ERROR_STATE_CHANGE,
                "the live input's pipeline failed to start");
    return nullptr;  // the destructor sets it back to NULL
  }
  GST_INFO("live input %s: pipeline started", uid.c_str());
  return self;
}

void InputPipeline::configure_element(GstElement *element, const Config &config) {
  // Embedded use: the server owns the only listener and authorises requests
  // itself (WHIP by the secret in the URL).
  if (has_property(element, "port")) g_object_set(element, "port", 0u, nullptr);
  if (has_property(element, "auth-token")) g_object_set(element, "auth-token", "", nullptr);
  if (has_property(element, "ice-addresses"))
    g_object_set(element, "ice-addresses", config.ice_addresses.c_str(), nullptr);
  if (has_property(element, "replace-publisher"))
    g_object_set(element, "replace-publisher", config.replace_publisher, nullptr);
  // The ICE servers advertised to clients serve the server's own sessions
  // too (first STUN, first TURN), in webrtcbin's URL form.
  for (const auto &s : config.ice_servers) {
    const bool stun = g_str_has_prefix(s.url.c_str(), "stun:");
    const bool turn = g_str_has_prefix(s.url.c_str(), "turn:") ||
                      g_str_has_prefix(s.url.c_str(), "turns:");
    const char *prop = stun ? "stun-server" : turn ? "turn-server" : nullptr;
    if (!prop || !has_property(element, prop)) continue;
    g_autofree gchar *current = nullptr;
    g_object_get(element, prop, &current, nullptr);
    if (current && *current) continue;
    const auto colon = s.url.find(':');
    std::string hostport = s.url.substr(colon + 1);
    hostport = hostport.substr(0, hostport.find('?'));
    std::string url = s.url.substr(0, colon) + "://";
    if (turn) {
      g_autofree gchar *user = g_uri_escape_string(s.username.c_str(), nullptr, FALSE);
      g_autofree gchar *pass = g_uri_escape_string(s.credential.c_str(), nullptr, FALSE);
      url += std::string(user) + ":" + pass + "@";
    }
    url += hostport;
    g_object_set(element, prop, url.c_str(), nullptr);
  }
}

namespace {

// Counts EOS events reaching the sinks a template added (recordings).
struct EosWait {
  GMutex lock;
  GCond cond;
  int pending = 0;
  EosWait() {
    g_mutex_init(&lock);
    g_cond_init(&cond);
  }
  ~EosWait() {
    g_mutex_clear(&lock);
    g_cond_clear(&cond);
  }
};

}  // namespace

void InputPipeline::finalise_files() {
  // The sinks of the template's own branches: every GstBaseSink not inside
  // the whepserversink (its viewers' sinks).
  std::vector<gobj::Ref<GstPad>> sink_pads;
  GstIterator *it = gst_bin_iterate_recurse(GST_BIN(pipeline_.get()));
  GValue item = G_VALUE_INIT;
  while (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
    auto *el = GST_ELEMENT(g_value_get_object(&item));
    if (GST_IS_BASE_SINK(el) && !gst_object_has_as_ancestor(GST_OBJECT(el), GST_OBJECT(sink_.get())))
      if (GstPad *pad = gst_element_get_static_pad(el, "sink")) sink_pads.push_back(gobj::adopt(pad));
    g_value_reset(&item);
  }
  g_value_unset(&item);
  gst_iterator_free(it);
  std::vector<gobj::Ref<GstPad>> outputs;
  for (GList *l = GST_ELEMENT(src_.get())->srcpads; l; l = l->next)
    outputs.push_back(gobj::ref(GST_PAD(l->data)));
  if (sink_pads.empty() || outputs.empty()) return;

  EosWait wait;
  wait.pending = static_cast<int>(sink_pads.size());
  std::vector<gulong> probes;
  for (auto &pad : sink_pads)
    probes.push_back(gst_pad_add_probe(
        pad.get(), GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM,
        +[](GstPad *, GstPadProbeInfo *info, gpointer data) {
          if (GST_EVENT_TYPE(GST_PAD_PROBE_INFO_EVENT(info)) == GST_EVENT_EOS) {
            auto *w = static_cast<EosWait *>(data);
            g_mutex_lock(&w->lock);
            w->pending--;
            g_cond_signal(&w->cond);
            g_mutex_unlock(&w->lock);
          }
          return GST_PAD_PROBE_OK;
        },
        &wait, nullptr));
  // EOS from the publisher's side: muxers write their headers/index and
  // pass it on; when it reaches a file sink, the file is complete.
  for (auto &pad : outputs) gst_pad_push_event(pad.get(), gst_event_new_eos());
  const gint64 deadline = g_get_monotonic_time() + kFinaliseTimeoutUs;
  g_mutex_lock(&wait.lock);
  while (wait.pending > 0 && g_cond_wait_until(&wait.cond, &wait.lock, deadline)) {
  }
  const int left = wait.pending;
  g_mutex_unlock(&wait.lock);
  for (size_t i = 0; i < sink_pads.size(); i++) gst_pad_remove_probe(sink_pads[i].get(), probes[i]);
  if (left > 0)
    GST_WARNING("live input %s: %d file sink(s) did not finish within %d s", uid_.c_str(), left,
                static_cast<int>(kFinaliseTimeoutUs / G_USEC_PER_SEC));
}

InputPipeline::~InputPipeline() {
  if (bus_watch_) g_source_remove(bus_watch_);
  if (pipeline_ && src_ && sink_) finalise_files();
  // NULL closes every WebRTC session of the input (publisher and viewers)
  // and finalises whatever the template writes (muxers, files).
  //
  // Producers first, the viewers' sink last: taken down together, the sink
  // passes PAUSED while its upstream still pushes, a viewer's sink blocks
  // in preroll inside that push, and whepserversink's PAUSED->READY (which
  // waits for in-flight pushes before removing viewers) deadlocks. With the
  // sink held in PLAYING until everything upstream is stopped, nothing is
  // pushing when it goes down.
  if (pipeline_) {
    if (sink_) gst_element_set_locked_state(sink_.get(), TRUE);
    gst_element_set_state(pipeline_.get(), GST_STATE_NULL);
    if (sink_) {
      gst_element_set_locked_state(sink_.get(), FALSE);
      gst_element_set_state(sink_.get(), GST_STATE_NULL);
    }
  }
  GST_INFO("live input %s: pipeline stopped", uid_.c_str());
}

gboolean InputPipeline::on_bus_message(GstBus *, GstMessage *msg, gpointer data) {
  auto *self = static_cast<InputPipeline *>(data);
  if (GST_MESSAGE_TYPE(msg) != GST_MESSAGE_ERROR) return G_SOURCE_CONTINUE;
  g_autoptr(GError) err = nullptr;
  g_autofree gchar *debug = nullptr;
  gst_message_parse_error(msg, &err, &debug);
  // Errors from one session's webrtcbin are the element's to handle; an
  // ERROR reaching the pipeline bus means the input's media path is broken.
  g_warning("live input %s: pipeline error from %s: %s", self->uid_.c_str(),
            GST_MESSAGE_SRC_NAME(msg), err ? err->message : "?");
  GST_DEBUG("debug info: %s", debug ? debug : "");
  if (!self->failed_ && self->callbacks_.failed) {
    self->failed_ = true;
    // Not from inside the watch: the owner destroys us, which removes it.
    std::string reason = err ? err->message : "pipeline error";
    auto cb = self->callbacks_.failed;
    g_idle_add_full(
        G_PRIORITY_DEFAULT,
        +[](gpointer d) -> gboolean {
          auto *pair =
              static_cast<std::pair<std::function<void(const std::string &)>, std::string> *>(d);
          pair->first(pair->second);
          return G_SOURCE_REMOVE;
        },
        new std::pair<std::function<void(const std::string &)>, std::string>(cb, reason),
        +[](gpointer d) {
          delete static_cast<std::pair<std::function<void(const std::string &)>, std::string> *>(
              d);
        });
  }
  return G_SOURCE_CONTINUE;
}

void InputPipeline::submit_publish(const whipwhep::HttpRequest &req,
                                   whipwhep::ResponseCallback done) {
  whipwhep::submit_request(src_.get(), req, g_main_context_get_thread_default(), std::move(done));
}

void InputPipeline::submit_play(const whipwhep::HttpRequest &req,
                                whipwhep::ResponseCallback done) {
  whipwhep::submit_request(sink_.get(), req, g_main_context_get_thread_default(),
                           std::move(done));
}

guint InputPipeline::viewer_count() const {
  if (!has_property(sink_.get(), "viewer-count")) return 0;
  guint n = 0;
  g_object_get(sink_.get(), "viewer-count", &n, nullptr);
  return n;
}

std::optional<bool> InputPipeline::publisher_live() const {
  for (const char *name : kPublisherProperties) {
    GParamSpec *p = g_object_class_find_property(G_OBJECT_GET_CLASS(src_.get()), name);
    if (!p || p->value_type != G_TYPE_BOOLEAN) continue;
    gboolean live = FALSE;
    g_object_get(src_.get(), name, &live, nullptr);
    return live != FALSE;
  }
  return std::nullopt;
}

}  // namespace server
