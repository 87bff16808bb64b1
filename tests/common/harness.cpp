#include "harness.h"

#include <gio/gio.h>

namespace test {

bool wait_for(const std::function<bool()> &pred, guint timeout_ms, GMainContext *context) {
  GMainContext *ctx = context ? context : g_main_context_default();
  const gint64 deadline = g_get_monotonic_time() + gint64(timeout_ms) * 1000;
  while (!pred()) {
    if (g_get_monotonic_time() >= deadline) return pred();
    // Dispatch what is ready; otherwise block briefly waiting for events.
    if (!g_main_context_iteration(ctx, FALSE)) {
      g_usleep(2000);  // a bounded poll interval, not a wait on the outcome
    }
  }
  return true;
}

guint free_tcp_port() {
  gobj::Unique<GError> err;
  gobj::Ref<GSocket> sock = gobj::adopt(g_socket_new(G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                                                     G_SOCKET_PROTOCOL_TCP, gobj::out(err)));
  if (!sock) return 0;
  gobj::Ref<GInetAddress> lo = gobj::adopt(g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4));
  gobj::Ref<GSocketAddress> addr = gobj::adopt(g_inet_socket_address_new(lo.get(), 0));
  if (!g_socket_bind(sock.get(), addr.get(), TRUE, gobj::out(err))) return 0;
  gobj::Ref<GSocketAddress> bound = gobj::adopt(g_socket_get_local_address(sock.get(), nullptr));
  guint port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(bound.get()));
  g_socket_close(sock.get(), nullptr);
  return port;
}

bool factory_is_ours(const char *name) {
  gobj::Ref<GstElementFactory> f = gobj::adopt(gst_element_factory_find(name));
  if (!f) return false;
  const gchar *plugin = gst_plugin_feature_get_plugin_name(GST_PLUGIN_FEATURE(f.get()));
  return plugin && g_str_equal(plugin, "whipwhep");
}

BusWatcher::BusWatcher(GstElement *pipeline) {
  g_mutex_init(&lock_);
  bus_ = gobj::adopt(gst_element_get_bus(pipeline));
  gst_bus_set_sync_handler(bus_.get(), &BusWatcher::on_message, this, nullptr);
}

BusWatcher::~BusWatcher() {
  gst_bus_set_sync_handler(bus_.get(), nullptr, nullptr, nullptr);
  g_mutex_clear(&lock_);
}

GstBusSyncReply BusWatcher::on_message(GstBus *, GstMessage *msg, gpointer data) {
  // A sync handler that returns GST_BUS_DROP owns the message (gst_bus_post
  // does not unref it then): without this every message leaked, and with it
  // a reference to its source element, so no test pipeline was ever freed.
  gobj::Ref<GstMessage> owned = gobj::adopt(msg);
  auto *self = static_cast<BusWatcher *>(data);
  g_mutex_lock(&self->lock_);
  if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR && !self->error_)
    self->error_ = gobj::ref(msg);
  if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_EOS) self->eos_ = true;
  if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_WARNING) {
    gobj::Unique<GError> err;
    gst_message_parse_warning(msg, gobj::out(err), nullptr);
    self->warnings_++;
    self->last_warning_ = err ? err->message : "";
  }
  g_mutex_unlock(&self->lock_);
  return GST_BUS_DROP;
}

bool BusWatcher::has_error() const {
  g_mutex_lock(&lock_);
  bool r = static_cast<bool>(error_);
  g_mutex_unlock(&lock_);
  return r;
}

bool BusWatcher::has_eos() const {
  g_mutex_lock(&lock_);
  bool r = eos_;
  g_mutex_unlock(&lock_);
  return r;
}

int BusWatcher::warnings() const {
  g_mutex_lock(&lock_);
  const int n = warnings_;
  g_mutex_unlock(&lock_);
  return n;
}

std::string BusWatcher::last_warning() const {
  g_mutex_lock(&lock_);
  std::string out = last_warning_;
  g_mutex_unlock(&lock_);
  return out;
}

std::string BusWatcher::error_text() const {
  g_mutex_lock(&lock_);
  std::string out;
  if (error_) {
    gobj::Unique<GError> err;
    gobj::Unique<gchar> dbg;
    gchar *d = nullptr;
    gst_message_parse_error(error_.get(), gobj::out(err), &d);
    dbg.reset(d);
    out = std::string(err ? err->message : "") + " (" + (dbg ? dbg.get() : "") + ")";
  }
  g_mutex_unlock(&lock_);
  return out;
}

const GstStructure *BusWatcher::error_details() const {
  g_mutex_lock(&lock_);
  const GstStructure *details = nullptr;
  if (error_) gst_message_parse_error_details(error_.get(), &details);
  g_mutex_unlock(&lock_);
  return details;
}

BufferCounter::~BufferCounter() {
  if (pad_ && probe_id_) gst_pad_remove_probe(pad_.get(), probe_id_);
}

void BufferCounter::attach(GstPad *pad) {
  g_mutex_init(&lock_);
  pad_ = gobj::ref(pad);
  probe_id_ = gst_pad_add_probe(pad, GstPadProbeType(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST),
                                &BufferCounter::probe, this, nullptr);
}

GstPadProbeReturn BufferCounter::probe(GstPad *, GstPadProbeInfo *info, gpointer data) {
  auto *self = static_cast<BufferCounter *>(data);
  guint n = 1;
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST)
    n = gst_buffer_list_length(GST_PAD_PROBE_INFO_BUFFER_LIST(info));
  gint64 now = g_get_monotonic_time();
  g_mutex_lock(&self->lock_);
  if (!self->first_) self->first_ = now;
  self->last_ = now;
  g_mutex_unlock(&self->lock_);
  g_atomic_int_add(&self->count_, static_cast<gint>(n));
  return GST_PAD_PROBE_OK;
}

gint64 BufferCounter::first_time() const {
  g_mutex_lock(&lock_);
  gint64 v = first_;
  g_mutex_unlock(&lock_);
  return v;
}

gint64 BufferCounter::last_time() const {
  g_mutex_lock(&lock_);
  gint64 v = last_;
  g_mutex_unlock(&lock_);
  return v;
}

}  // namespace test
