// Test harness shared by every test binary: GStreamer set-up with the
// plugin from the build tree, bounded waiting, free loopback ports.
#pragma once

#include <gst/gst.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>

#include "gobj.h"

namespace test {

// Iterates `context` (default: the global default context) until pred() is
// true or timeout_ms passed. Returns pred()'s last value. Never sleeps
// blindly: each iteration blocks at most 10 ms waiting for events.
bool wait_for(const std::function<bool()> &pred, guint timeout_ms,
              GMainContext *context = nullptr);

// A TCP port on 127.0.0.1 that was free a moment ago.
guint free_tcp_port();

// The element factory `name`, asserted to come from our plugin.
bool factory_is_ours(const char *name);

// Collects bus messages of a pipeline from any thread.
class BusWatcher {
 public:
  explicit BusWatcher(GstElement *pipeline);
  ~BusWatcher();
  // First ERROR message seen so far (nullptr if none); text = "domain: message (debug)".
  bool has_error() const;
  std::string error_text() const;
  const GstStructure *error_details() const;  // may be null
  bool has_eos() const;
  // WARNING messages seen so far, and the text of the last one.
  int warnings() const;
  std::string last_warning() const;

 private:
  static GstBusSyncReply on_message(GstBus *bus, GstMessage *msg, gpointer data);
  gobj::Ref<GstBus> bus_;
  mutable GMutex lock_;
  gobj::Ref<GstMessage> error_;
  bool eos_ = false;
  int warnings_ = 0;
  std::string last_warning_;
};

// Counts buffers through a pad (thread-safe).
class BufferCounter {
 public:
  BufferCounter() = default;
  ~BufferCounter();
  void attach(GstPad *pad);
  guint64 count() const { return g_atomic_int_get(&count_); }
  // Monotonic time (µs) of the first buffer, 0 if none.
  gint64 first_time() const;
  gint64 last_time() const;

 private:
  static GstPadProbeReturn probe(GstPad *, GstPadProbeInfo *info, gpointer data);
  gobj::Ref<GstPad> pad_;
  gulong probe_id_ = 0;
  gint count_ = 0;
  gint64 first_ = 0;
  gint64 last_ = 0;
  mutable GMutex lock_;
};

}  // namespace test
