#include "ice-receive-src.h"

#include "gobj.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>

GST_DEBUG_CATEGORY_STATIC(ice_receive_src_debug);
#define GST_CAT_DEFAULT ice_receive_src_debug

namespace {

struct WhipwhepIceReceiveSrc {
  GstElement parent;
  GstPad *srcpad;  // owned by the element
  NiceAgent *agent;
  GMainContext *context;  // the agent's
  guint stream_id, component;
  // Only touched on the agent's thread, while attached.
  bool events_sent;
  GstElement *queue;  // owned; the transport receive bin's queue, if found
  std::atomic<guint64> received, dropped;
};
struct WhipwhepIceReceiveSrcClass {
  GstElementClass parent_class;
};

gpointer parent_class = nullptr;

// What may wait in the transport receive bin's queue before datagrams are
// dropped here. webrtcbin makes that queue non-leaky (5 MB) once reception
// passes, so a stalled queue thread would otherwise block the shared agent's
// thread, and with it every viewer on the agent. What a viewer sends the
// server is a few KB/s (its SRTCP, the DTLS handshake), so anything near this
// means that thread is stuck, not that the viewer is busy.
constexpr guint kMaxQueuedBytes = 256 * 1024;

enum { PROP_0, PROP_RECEIVED, PROP_DROPPED };

GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

WhipwhepIceReceiveSrc *self_of(gpointer p) { return static_cast<WhipwhepIceReceiveSrc *>(p); }

// Sticky events go once; the pad resends them to a peer that missed them
// (flushing while the receive bin was still coming up).
void send_stream_events(WhipwhepIceReceiveSrc *self) {
  gchar *id = gst_pad_create_stream_id_printf(self->srcpad, GST_ELEMENT(self), "%u-%u",
                                              self->stream_id, self->component);
  GstEvent *start = gst_event_new_stream_start(id);
  g_free(id);
  gst_event_set_group_id(start, gst_util_group_id_next());
  gst_pad_push_event(self->srcpad, start);
  // The transport receive bin's capsfilter knows what this component
  // carries (application/x-rtp or x-rtcp); take that if it is fixed.
  gobj::Ref<GstCaps> peer = gobj::adopt(gst_pad_peer_query_caps(self->srcpad, nullptr));
  if (peer && !gst_caps_is_empty(peer.get()) && gst_caps_is_fixed(peer.get()))
    gst_pad_push_event(self->srcpad, gst_event_new_caps(peer.get()));
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  gst_pad_push_event(self->srcpad, gst_event_new_segment(&segment));
  self->events_sent = true;
}

// The first GstQueue downstream, within a few single-output hops (webrtcbin
// 1.22: this -> capsfilter -> queue). A new reference, or nullptr.
GstElement *find_downstream_queue(GstPad *srcpad) {
  gobj::Ref<GstPad> pad = gobj::adopt(gst_pad_get_peer(srcpad));
  for (int hop = 0; pad && hop < 3; ++hop) {
    gobj::Ref<GstElement> element = gobj::adopt(gst_pad_get_parent_element(pad.get()));
    if (!element) return nullptr;
    if (g_strcmp0(G_OBJECT_TYPE_NAME(element.get()), "GstQueue") == 0) return element.release();
    if (element.get()->numsrcpads != 1) return nullptr;
    gobj::Ref<GstPad> out = gobj::adopt(gst_element_get_static_pad(element.get(), "src"));
    if (!out) return nullptr;
    pad = gobj::adopt(gst_pad_get_peer(out.get()));
  }
  return nullptr;
}

bool queue_has_room(WhipwhepIceReceiveSrc *self, guint len) {
  if (!self->queue) return true;
  guint level = 0;
  g_object_get(self->queue, "current-level-bytes", &level, nullptr);
  return level + len <= kMaxQueuedBytes;
}

// libnice's receive callback, on the agent's thread.
void on_receive(NiceAgent *, guint, guint, guint len, gchar *data, gpointer user_data) {
  auto *self = self_of(user_data);
  if (!self->events_sent) {
    send_stream_events(self);
    if (!self->queue) self->queue = find_downstream_queue(self->srcpad);
  }
  if (!queue_has_room(self, len)) {
    const guint64 dropped = ++self->dropped;
    // The first drop and then every 1000th: visible, not a flood.
    if (dropped % 1000 == 1)
      GST_WARNING_OBJECT(self, "receive queue holds %u KiB or more, its thread is stalled: "
                         "%" G_GUINT64_FORMAT " datagrams dropped so far",
                         kMaxQueuedBytes / 1024, dropped);
    return;
  }
  ++self->received;
  GstBuffer *buffer = gst_buffer_new_allocate(nullptr, len, nullptr);
  gst_buffer_fill(buffer, 0, data, len);
  // As nicesrc's do-timestamp: the running time of arrival.
  const GstClockTime now = gst_element_get_current_running_time(GST_ELEMENT(self));
  GST_BUFFER_PTS(buffer) = now;
  GST_BUFFER_DTS(buffer) = now;
  const GstFlowReturn ret = gst_pad_push(self->srcpad, buffer);
  // Not an error here: nothing waits on this pad, and the next datagram is
  // tried again (flushing while the receive bin starts or stops, not linked
  // while webrtcbin has not exposed the stream yet).
  if (ret != GST_FLOW_OK) GST_LOG_OBJECT(self, "push: %s", gst_flow_get_name(ret));
}

GstStateChangeReturn change_state(GstElement *element, GstStateChange transition) {
  auto *self = self_of(element);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    nice_agent_attach_recv(self->agent, self->stream_id, self->component, self->context,
                           nullptr, nullptr);
    whipwhep::wait_for_main_context(self->context);
    g_clear_object(&self->queue);  // the callback is out: found again on restart
  }
  GstStateChangeReturn ret = GST_ELEMENT_CLASS(parent_class)->change_state(element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE) return ret;
  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      self->events_sent = false;
      if (!nice_agent_attach_recv(self->agent, self->stream_id, self->component, self->context,
                                  on_receive, self))
        GST_DEBUG_OBJECT(self, "stream %u has no component %u", self->stream_id, self->component);
      return GST_STATE_CHANGE_NO_PREROLL;  // live
    case GST_STATE_CHANGE_PLAYING_TO_PAUSED:
      return GST_STATE_CHANGE_NO_PREROLL;
    default:
      return ret;
  }
}

void get_property(GObject *object, guint id, GValue *value, GParamSpec *pspec) {
  auto *self = self_of(object);
  switch (id) {
    case PROP_RECEIVED:
      g_value_set_uint64(value, self->received.load());
      break;
    case PROP_DROPPED:
      g_value_set_uint64(value, self->dropped.load());
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

void finalize(GObject *object) {
  auto *self = self_of(object);
  g_clear_object(&self->queue);
  g_clear_object(&self->agent);
  if (self->context) g_main_context_unref(self->context);
  G_OBJECT_CLASS(parent_class)->finalize(object);
}

void class_init(gpointer klass, gpointer) {
  parent_class = g_type_class_peek_parent(klass);
  auto *gobject_class = G_OBJECT_CLASS(klass);
  gobject_class->finalize = finalize;
  gobject_class->get_property = get_property;
  g_object_class_install_property(
      gobject_class, PROP_RECEIVED,
      g_param_spec_uint64("received", "Received", "Datagrams pushed downstream", 0, G_MAXUINT64,
                          0, static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));
  g_object_class_install_property(
      gobject_class, PROP_DROPPED, g_param_spec_uint64(
          "dropped", "Dropped",
          "Datagrams dropped because the receive queue downstream was full (its thread stalled)",
          0, G_MAXUINT64, 0, static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));
  auto *element_class = GST_ELEMENT_CLASS(klass);
  element_class->change_state = change_state;
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "ICE receive source", "Source/Network",
      "Pushes one libnice component's datagrams from its agent's own thread",
      "whipwhep");
}

void instance_init(GTypeInstance *instance, gpointer) {
  auto *self = self_of(instance);
  new (&self->received) std::atomic<guint64>(0);
  new (&self->dropped) std::atomic<guint64>(0);
  self->srcpad = gst_pad_new_from_static_template(&src_template, "src");
  gst_element_add_pad(GST_ELEMENT(self), self->srcpad);
}

// Registered once per process: the plugin and the tests each carry a copy.
GType ice_receive_src_get_type() {
  static GType type = [] {
    GST_DEBUG_CATEGORY_INIT(ice_receive_src_debug, "whipwhep-ice-receive-src", 0,
                            "threadless libnice receive source");
    return gobj::register_type_once("WhipwhepIceReceiveSrc", GST_TYPE_ELEMENT,
                                    sizeof(WhipwhepIceReceiveSrcClass), class_init,
                                    sizeof(WhipwhepIceReceiveSrc), instance_init);
  }();
  return type;
}

}  // namespace

namespace whipwhep {

// Returns once the agent's thread is outside on_receive(): libnice reads
// the callback under its lock but invokes it after releasing it, so a
// datagram that arrived just before the detach may still be being pushed.
// Everything dispatched before this idle source has returned when it runs.
void wait_for_main_context(GMainContext *context) {
  if (g_main_context_is_owner(context)) return;  // we are that thread
  struct Barrier {
    std::mutex lock;
    std::condition_variable cond;
    bool passed = false;
  };
  auto barrier = std::make_shared<Barrier>();
  GSource *idle = g_idle_source_new();
  g_source_set_priority(idle, G_PRIORITY_HIGH);
  g_source_set_callback(
      idle,
      +[](gpointer data) -> gboolean {
        auto &b = *static_cast<std::shared_ptr<Barrier> *>(data);
        std::lock_guard<std::mutex> g(b->lock);
        b->passed = true;
        b->cond.notify_all();
        return G_SOURCE_REMOVE;
      },
      new std::shared_ptr<Barrier>(barrier),
      +[](gpointer data) { delete static_cast<std::shared_ptr<Barrier> *>(data); });
  g_source_attach(idle, context);
  g_source_unref(idle);
  std::unique_lock<std::mutex> g(barrier->lock);
  if (!barrier->cond.wait_for(g, std::chrono::seconds(2), [&] { return barrier->passed; }))
    GST_WARNING("ICE agent thread did not answer within 2 s");
}

GstElement *ice_receive_src_new(NiceAgent *agent, guint stream_id, guint component) {
  auto *self = self_of(g_object_new(ice_receive_src_get_type(), nullptr));
  self->agent = NICE_AGENT(g_object_ref(agent));
  gpointer context = nullptr;
  g_object_get(agent, "main-context", &context, nullptr);
  self->context = g_main_context_ref(context ? static_cast<GMainContext *>(context)
                                             : g_main_context_default());
  self->stream_id = stream_id;
  self->component = component;
  return GST_ELEMENT(self);
}

}  // namespace whipwhep
