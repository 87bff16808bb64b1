// The threadless ICE receive source (gst/common/ice-receive-src.h) between
// two real libnice agents on 127.0.0.1: it must never let a stalled
// downstream queue block the agent's thread, which a shared agent's other
// viewers need.
#include <gtest/gtest.h>
#include <nice/agent.h>

#include <atomic>
#include <thread>
#include <vector>

#include "gobj.h"
#include "harness.h"
#include "ice-receive-src.h"
#include "ice.h"

namespace {

// One libnice agent whose main context runs on a thread of its own, as a
// shared agent's does, with one single-component stream.
class AgentOnThread {
 public:
  explicit AgentOnThread(bool controlling)
      : context_(gobj::adopt(g_main_context_new())),
        loop_(gobj::adopt(g_main_loop_new(context_.get(), FALSE))),
        agent_(gobj::adopt(nice_agent_new(context_.get(), NICE_COMPATIBILITY_RFC5245))) {
    whipwhep::IceSettings loopback;
    loopback.local_addresses = {"127.0.0.1"};
    EXPECT_TRUE(whipwhep::configure_nice_agent(agent(), loopback));
    g_object_set(agent(), "controlling-mode", controlling, nullptr);
    stream_ = nice_agent_add_stream(agent(), 1);
    g_signal_connect(agent(), "candidate-gathering-done",
                     G_CALLBACK(+[](NiceAgent *, guint, gpointer self) {
                       static_cast<AgentOnThread *>(self)->gathered_ = true;
                     }),
                     this);
    g_signal_connect(agent(), "component-state-changed",
                     G_CALLBACK(+[](NiceAgent *, guint, guint, guint state, gpointer self) {
                       if (state == NICE_COMPONENT_STATE_READY)
                         static_cast<AgentOnThread *>(self)->ready_ = true;
                     }),
                     this);
    thread_ = std::thread([this] { g_main_loop_run(loop_.get()); });
  }
  ~AgentOnThread() {
    g_signal_handlers_disconnect_by_data(agent(), this);
    g_main_loop_quit(loop_.get());
    thread_.join();
  }

  NiceAgent *agent() const { return agent_.get(); }
  GMainContext *context() const { return context_.get(); }
  guint stream() const { return stream_; }
  bool gathered() const { return gathered_; }
  bool ready() const { return ready_; }

  // Offers this side's credentials and host candidates to `other`.
  void describe_to(const AgentOnThread &other) const {
    gchar *ufrag = nullptr, *pwd = nullptr;
    ASSERT_TRUE(nice_agent_get_local_credentials(agent(), stream_, &ufrag, &pwd));
    nice_agent_set_remote_credentials(other.agent(), other.stream(), ufrag, pwd);
    g_free(ufrag);
    g_free(pwd);
    GSList *candidates = nice_agent_get_local_candidates(agent(), stream_, 1);
    ASSERT_NE(candidates, nullptr);
    EXPECT_GT(nice_agent_set_remote_candidates(other.agent(), other.stream(), 1, candidates), 0);
    g_slist_free_full(candidates, reinterpret_cast<GDestroyNotify>(nice_candidate_free));
  }

  // True once the thread has run something posted now: it is not blocked.
  bool answers_within(guint timeout_ms) {
    auto ran = std::make_shared<std::atomic<bool>>(false);
    GSource *idle = g_idle_source_new();
    g_source_set_callback(
        idle,
        +[](gpointer data) -> gboolean {
          static_cast<std::shared_ptr<std::atomic<bool>> *>(data)->get()->store(true);
          return G_SOURCE_REMOVE;
        },
        new std::shared_ptr<std::atomic<bool>>(ran),
        +[](gpointer data) { delete static_cast<std::shared_ptr<std::atomic<bool>> *>(data); });
    g_source_attach(idle, context());
    g_source_unref(idle);
    return test::wait_for([&] { return ran->load(); }, timeout_ms);
  }

 private:
  gobj::Ref<GMainContext> context_;
  gobj::Ref<GMainLoop> loop_;
  gobj::Ref<NiceAgent> agent_;
  guint stream_ = 0;
  std::atomic<bool> gathered_{false}, ready_{false};
  std::thread thread_;
};

guint64 uint64_property(GstElement *element, const char *name) {
  guint64 value = 0;
  g_object_get(element, name, &value, nullptr);
  return value;
}

guint queue_level(GstElement *queue) {
  guint level = 0;
  g_object_get(queue, "current-level-bytes", &level, nullptr);
  return level;
}

TEST(IceReceiveSrc, DropsRatherThanBlockTheAgentThreadWhenItsQueueStalls) {
  AgentOnThread server(true), viewer(false);
  nice_agent_attach_recv(viewer.agent(), viewer.stream(), 1, viewer.context(),
                         +[](NiceAgent *, guint, guint, guint, gchar *, gpointer) {}, nullptr);

  // As in webrtcbin's transport receive bin once reception passes: a
  // non-leaky queue, here smaller than webrtcbin's 5 MB to keep the test
  // short, whose thread is stuck.
  gobj::Ref<GstElement> pipeline = gobj::adopt(gst_pipeline_new("receive"));
  GstElement *src = whipwhep::ice_receive_src_new(server.agent(), server.stream(), 1);
  GstElement *queue = gst_element_factory_make("queue", nullptr);
  GstElement *sink = gst_element_factory_make("fakesink", nullptr);
  ASSERT_TRUE(src && queue && sink);
  g_object_set(queue, "leaky", 0, "max-size-bytes", 1024 * 1024, "max-size-buffers", 0,
               "max-size-time", G_GUINT64_CONSTANT(0), nullptr);
  g_object_set(sink, "sync", FALSE, "async", FALSE, nullptr);
  gst_bin_add_many(GST_BIN(pipeline.get()), src, queue, sink, nullptr);
  ASSERT_TRUE(gst_element_link_many(src, queue, sink, nullptr));
  test::BusWatcher bus(pipeline.get());
  gobj::Ref<GstPad> stalled = gobj::adopt(gst_element_get_static_pad(queue, "src"));
  const gulong block = gst_pad_add_probe(
      stalled.get(), GST_PAD_PROBE_TYPE_BLOCK_DOWNSTREAM,
      +[](GstPad *, GstPadProbeInfo *, gpointer) { return GST_PAD_PROBE_OK; }, nullptr, nullptr);
  test::BufferCounter delivered;
  gobj::Ref<GstPad> sink_pad = gobj::adopt(gst_element_get_static_pad(sink, "sink"));
  delivered.attach(sink_pad.get());
  ASSERT_NE(gst_element_set_state(pipeline.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);

  ASSERT_TRUE(nice_agent_gather_candidates(server.agent(), server.stream()));
  ASSERT_TRUE(nice_agent_gather_candidates(viewer.agent(), viewer.stream()));
  ASSERT_TRUE(test::wait_for([&] { return server.gathered() && viewer.gathered(); }, 5000));
  server.describe_to(viewer);
  viewer.describe_to(server);
  ASSERT_TRUE(test::wait_for([&] { return server.ready() && viewer.ready(); }, 10000))
      << "ICE did not connect on 127.0.0.1";

  // Send until the source drops, each batch once the last was taken in:
  // without the bound the agent's thread blocks when the queue is full
  // (~870 datagrams), the counts stop and this fails.
  std::vector<gchar> datagram(1200, 0x42);
  guint64 sent = 0;
  while (uint64_property(src, "dropped") == 0 && sent < 4000) {
    const guint64 before = uint64_property(src, "received") + uint64_property(src, "dropped");
    for (int i = 0; i < 32; ++i, ++sent)
      nice_agent_send(viewer.agent(), viewer.stream(), 1, datagram.size(), datagram.data());
    ASSERT_TRUE(test::wait_for(
        [&] { return uint64_property(src, "received") + uint64_property(src, "dropped") > before; },
        5000))
        << "the agent's thread stopped taking datagrams after " << before;
  }
  EXPECT_GT(uint64_property(src, "dropped"), 0u) << sent << " datagrams sent";
  EXPECT_LE(queue_level(queue), 256u * 1024) << "the receive queue grew past the bound";
  EXPECT_GT(queue_level(queue), 128u * 1024) << "datagrams were dropped before the bound";
  EXPECT_TRUE(server.answers_within(2000)) << "the agent's thread is blocked";

  // Once the queue's thread moves again, what was kept is delivered and
  // datagrams are taken in again.
  gst_pad_remove_probe(stalled.get(), block);
  const guint64 kept = uint64_property(src, "received");
  ASSERT_TRUE(test::wait_for([&] { return delivered.count() >= kept; }, 5000));
  nice_agent_send(viewer.agent(), viewer.stream(), 1, datagram.size(), datagram.data());
  EXPECT_TRUE(test::wait_for([&] { return delivered.count() > kept; }, 5000));
  EXPECT_FALSE(bus.has_error()) << bus.error_text();
  gst_element_set_state(pipeline.get(), GST_STATE_NULL);
}

}  // namespace
