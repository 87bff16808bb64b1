// One live input's media pipeline, built from the operator's template: a
// whipserversrc named "src" (the publisher's session) and a whepserversink
// named "sink" (the viewers' sessions) plus whatever the template adds.
//
// Lives on the server's main context: created, driven and destroyed there;
// its bus watch and the element notifications it listens to are delivered
// there too.
#pragma once

#include <gst/gst.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/gobj.h"
#include "common/http-types.h"
#include "config.h"

namespace server {

class InputPipeline {
 public:
  // Called on the main context when the pipeline failed (an ERROR on its
  // bus) and must be dropped; never from inside a public method.
  struct Callbacks {
    std::function<void(const std::string &reason)> failed;
  };

  // Builds the pipeline from config.pipeline_template and sets it PLAYING.
  static std::unique_ptr<InputPipeline> create(const std::string &uid, const Config &config,
                                               Callbacks callbacks, GError **error);
  ~InputPipeline();  // ends every session: pipeline to NULL
  InputPipeline(const InputPipeline &) = delete;
  InputPipeline &operator=(const InputPipeline &) = delete;

  // Hand a WHIP request to the whipserversrc / a WHEP request to the
  // whepserversink; `done` runs on the main context.
  void submit_publish(const whipwhep::HttpRequest &req, whipwhep::ResponseCallback done);
  void submit_play(const whipwhep::HttpRequest &req, whipwhep::ResponseCallback done);

  // Current WHEP viewers (the sink's viewer-count property).
  guint viewer_count() const;
  // Whether the element reports a live publisher; nullopt when the element
  // has no way to tell (then the caller tracks WHIP POST/DELETE itself).
  std::optional<bool> publisher_live() const;

 private:
  InputPipeline(std::string uid, Callbacks callbacks);
  static gboolean on_bus_message(GstBus *bus, GstMessage *msg, gpointer self);
  void configure_element(GstElement *element, const Config &config);
  // EOS through the template's own branches, waiting (bounded) until their
  // sinks have it: muxers finish the files they write.
  void finalise_files();

  std::string uid_;
  Callbacks callbacks_;
  gobj::Ref<GstElement> pipeline_;
  gobj::Ref<GstElement> src_;
  gobj::Ref<GstElement> sink_;
  guint bus_watch_ = 0;
  bool failed_ = false;
};

}  // namespace server
