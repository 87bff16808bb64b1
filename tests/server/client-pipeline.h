// A client pipeline (whipsink / whepsrc / decoders) in the test process,
// its bus watched: shared by the server tests that publish and play.
#pragma once

#include <gst/gst.h>
#include <gtest/gtest.h>

#include <initializer_list>
#include <memory>
#include <string>

#include "gobj.h"
#include "harness.h"

namespace test {

// Every named element is built and comes from our plugin.
inline bool our_elements(std::initializer_list<const char *> names) {
  for (const char *name : names)
    if (!factory_is_ours(name)) return false;
  return true;
}

struct Client {
  explicit Client(const std::string &description) {
    GError *err = nullptr;
    pipeline = gobj::sink(gst_parse_launch(description.c_str(), &err));
    if (err) {
      ADD_FAILURE() << "cannot build '" << description << "': " << err->message;
      g_error_free(err);
    }
    if (pipeline) bus = std::make_unique<BusWatcher>(pipeline.get());
  }
  ~Client() { stop(); }
  void play() { gst_element_set_state(pipeline.get(), GST_STATE_PLAYING); }
  void stop() {
    if (pipeline) gst_element_set_state(pipeline.get(), GST_STATE_NULL);
  }
  gobj::Ref<GstElement> by_name(const char *name) {
    return gobj::adopt(gst_bin_get_by_name(GST_BIN(pipeline.get()), name));
  }
  // The session resource a whipsink/whepsrc named `name` holds ("" if none).
  std::string resource_url(const char *name) {
    gobj::Ref<GstElement> e = by_name(name);
    g_autofree gchar *url = nullptr;
    g_object_get(e.get(), "resource-url", &url, nullptr);
    return gobj::str_or(url);
  }
  // Counts buffers reaching the sink pad of the element named `sink`.
  void count(BufferCounter *c, const char *sink = "out") {
    gobj::Ref<GstElement> out = by_name(sink);
    gobj::Ref<GstPad> pad = gobj::adopt(gst_element_get_static_pad(out.get(), "sink"));
    c->attach(pad.get());
  }
  gobj::Ref<GstElement> pipeline;
  std::unique_ptr<BusWatcher> bus;
};

}  // namespace test
