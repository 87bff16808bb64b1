// The fan-out core (gst/whep/fanout.h) on its own: sharding over sender
// threads, order, payload-type rewriting, sticky events, removal.
#include <gst/rtp/rtp.h>
#include <gtest/gtest.h>

#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "fanout.h"
#include "harness.h"

using namespace whipwhep;

namespace {

// A parentless sink pad standing in for a viewer's webrtcbin sink pad.
struct Receiver {
  gobj::Ref<GstPad> pad;
  std::mutex lock;
  std::vector<guint16> seqs;
  std::vector<guint8> pts;
  std::set<std::thread::id> threads;
  int caps_pt = -2;           // payload in the last caps event seen
  bool caps_before_media = true;
  guint lists = 0;

  explicit Receiver(int n) {
    pad = gobj::sink(gst_pad_new(("viewer-" + std::to_string(n)).c_str(), GST_PAD_SINK));
    gst_pad_set_element_private(pad.get(), this);
    gst_pad_set_chain_function(pad.get(), &Receiver::chain);
    gst_pad_set_chain_list_function(pad.get(), &Receiver::chain_list);
    gst_pad_set_event_function(pad.get(), &Receiver::event);
    gst_pad_set_active(pad.get(), TRUE);
  }
  ~Receiver() { gst_pad_set_active(pad.get(), FALSE); }

  void take(GstBuffer *buf) {
    GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
    ASSERT_TRUE(gst_rtp_buffer_map(buf, GST_MAP_READ, &rtp));
    std::lock_guard<std::mutex> g(lock);
    if (caps_pt == -2) caps_before_media = false;
    seqs.push_back(gst_rtp_buffer_get_seq(&rtp));
    pts.push_back(gst_rtp_buffer_get_payload_type(&rtp));
    threads.insert(std::this_thread::get_id());
    gst_rtp_buffer_unmap(&rtp);
  }
  size_t count() {
    std::lock_guard<std::mutex> g(lock);
    return seqs.size();
  }

  static GstFlowReturn chain(GstPad *pad, GstObject *, GstBuffer *buf) {
    gobj::Ref<GstBuffer> b = gobj::adopt(buf);
    static_cast<Receiver *>(gst_pad_get_element_private(pad))->take(buf);
    return GST_FLOW_OK;
  }
  static GstFlowReturn chain_list(GstPad *pad, GstObject *, GstBufferList *list) {
    gobj::Ref<GstBufferList> l = gobj::adopt(list);
    auto *self = static_cast<Receiver *>(gst_pad_get_element_private(pad));
    {
      std::lock_guard<std::mutex> g(self->lock);
      self->lists++;
    }
    for (guint i = 0; i < gst_buffer_list_length(list); i++)
      self->take(gst_buffer_list_get(list, i));
    return GST_FLOW_OK;
  }
  static gboolean event(GstPad *pad, GstObject *, GstEvent *ev) {
    gobj::Ref<GstEvent> e = gobj::adopt(ev);
    auto *self = static_cast<Receiver *>(gst_pad_get_element_private(pad));
    if (GST_EVENT_TYPE(ev) == GST_EVENT_CAPS) {
      GstCaps *caps = nullptr;
      gst_event_parse_caps(ev, &caps);
      int pt = -1;
      gst_structure_get_int(gst_caps_get_structure(caps, 0), "payload", &pt);
      std::lock_guard<std::mutex> g(self->lock);
      self->caps_pt = pt;
    }
    return TRUE;
  }
};

GstBuffer *rtp_packet(guint16 seq, guint8 pt) {
  GstBuffer *buf = gst_rtp_buffer_new_allocate(100, 0, 0);
  GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
  gst_rtp_buffer_map(buf, GST_MAP_WRITE, &rtp);
  gst_rtp_buffer_set_seq(&rtp, seq);
  gst_rtp_buffer_set_payload_type(&rtp, pt);
  gst_rtp_buffer_set_ssrc(&rtp, 0x1234);
  gst_rtp_buffer_unmap(&rtp);
  return buf;
}

void start_stream(Fanout &f, int pt) {
  GstPad *sink = f.sink_pad();
  ASSERT_TRUE(gst_pad_send_event(sink, gst_event_new_stream_start("fanout-test")));
  gobj::Ref<GstCaps> caps = gobj::adopt(gst_caps_new_simple(
      "application/x-rtp", "media", G_TYPE_STRING, "video", "encoding-name", G_TYPE_STRING, "VP8",
      "clock-rate", G_TYPE_INT, 90000, "payload", G_TYPE_INT, pt, nullptr));
  ASSERT_TRUE(gst_pad_send_event(sink, gst_event_new_caps(caps.get())));
  GstSegment seg;
  gst_segment_init(&seg, GST_FORMAT_TIME);
  ASSERT_TRUE(gst_pad_send_event(sink, gst_event_new_segment(&seg)));
}

// Sends `n` packets from seq `first`: single buffers and lists of 4 alternately.
void send_packets(Fanout &f, guint16 first, guint n, guint8 pt) {
  guint16 seq = first;
  for (guint sent = 0; sent < n;) {
    if ((sent / 4) % 2 == 0) {
      ASSERT_EQ(gst_pad_chain(f.sink_pad(), rtp_packet(seq++, pt)), GST_FLOW_OK);
      sent++;
    } else {
      GstBufferList *l = gst_buffer_list_new();
      for (guint i = 0; i < 4 && sent < n; i++, sent++) gst_buffer_list_add(l, rtp_packet(seq++, pt));
      ASSERT_EQ(gst_pad_chain_list(f.sink_pad(), l), GST_FLOW_OK);
    }
  }
}

}  // namespace

TEST(Fanout, ShardsViewersOverSenderThreadsInOrderWithTheirOwnPayloadTypes) {
  constexpr guint kPackets = 400;
  Fanout f("video", 3);
  EXPECT_EQ(f.shard_count(), 3u);
  start_stream(f, 96);
  std::vector<std::unique_ptr<Receiver>> rx;
  std::vector<std::shared_ptr<Fanout::Branch>> branches;
  for (int i = 0; i < 6; i++) {
    rx.push_back(std::make_unique<Receiver>(i));
    // Odd viewers negotiated another payload type.
    branches.push_back(f.add_branch(rx.back()->pad.get(), i % 2 ? 100 : -1));
    f.set_ready(branches.back());
  }
  EXPECT_EQ(f.shard_loads(), (std::vector<guint>{2, 2, 2}));

  send_packets(f, 1000, kPackets, 96);
  // The counters are bumped once a push returned, just after the receiver saw it.
  ASSERT_TRUE(test::wait_for(
      [&] {
        for (size_t i = 0; i < rx.size(); i++)
          if (rx[i]->count() < kPackets || branches[i]->packets.load() < kPackets) return false;
        return true;
      },
      10000));

  std::set<std::thread::id> all_threads;
  for (size_t i = 0; i < rx.size(); i++) {
    Receiver &r = *rx[i];
    std::lock_guard<std::mutex> g(r.lock);
    ASSERT_EQ(r.seqs.size(), kPackets) << "viewer " << i;
    for (guint k = 0; k < kPackets; k++) ASSERT_EQ(r.seqs[k], 1000 + k) << "viewer " << i;
    const guint8 want = i % 2 ? 100 : 96;
    for (guint8 pt : r.pts) ASSERT_EQ(pt, want) << "viewer " << i;
    EXPECT_EQ(r.caps_pt, int(want)) << "viewer " << i;
    EXPECT_TRUE(r.caps_before_media) << "viewer " << i;
    // Each viewer is served by exactly one thread (its shard's).
    EXPECT_EQ(r.threads.size(), 1u) << "viewer " << i;
    all_threads.insert(r.threads.begin(), r.threads.end());
    EXPECT_EQ(branches[i]->packets.load(), kPackets);
  }
  // Three shards, three sender threads; the pushing (streaming) thread only
  // hands packets over.
  EXPECT_EQ(all_threads.size(), 3u);
  EXPECT_EQ(all_threads.count(std::this_thread::get_id()), 0u);
  EXPECT_EQ(f.dropped_packets(), 0u);
}

TEST(Fanout, OneThreadMeansEverythingInlineOnTheStreamingThread) {
  Fanout f("audio", 1);
  EXPECT_EQ(f.shard_count(), 1u);
  start_stream(f, 111);
  Receiver r(0);
  auto b = f.add_branch(r.pad.get(), -1);
  f.set_ready(b);
  send_packets(f, 1, 10, 111);
  // No hand-off: delivered before chain() returned.
  EXPECT_EQ(r.count(), 10u);
  std::lock_guard<std::mutex> g(r.lock);
  EXPECT_EQ(r.threads, std::set<std::thread::id>{std::this_thread::get_id()});
}

TEST(Fanout, ViewerJoiningLateGetsCapsFirstAndNothingBeforeReady) {
  Fanout f("video", 2);
  start_stream(f, 96);
  Receiver early(0), late(1);
  auto be = f.add_branch(early.pad.get(), -1);
  f.set_ready(be);
  auto bl = f.add_branch(late.pad.get(), 98);  // not ready yet: DTLS still connecting
  EXPECT_NE(be->shard, bl->shard);
  send_packets(f, 1, 20, 96);
  ASSERT_TRUE(test::wait_for([&] { return early.count() == 20; }, 5000));
  EXPECT_EQ(late.count(), 0u);
  f.set_ready(bl);
  send_packets(f, 21, 20, 96);
  // Packets still queued for its shard when it became ready may reach it
  // too; everything sent after it is ready must, in order.
  auto last_seq = [](Receiver &r) {
    std::lock_guard<std::mutex> g(r.lock);
    return r.seqs.empty() ? 0 : r.seqs.back();
  };
  ASSERT_TRUE(test::wait_for([&] { return last_seq(late) == 40 && early.count() == 40; }, 5000))
      << "late " << late.count() << " early " << early.count();
  EXPECT_GE(late.count(), 20u);
  std::lock_guard<std::mutex> g(late.lock);
  EXPECT_TRUE(late.caps_before_media);
  EXPECT_EQ(late.caps_pt, 98);
  for (size_t k = 1; k < late.seqs.size(); k++) EXPECT_EQ(late.seqs[k], late.seqs[k - 1] + 1);
  EXPECT_EQ(late.seqs.back(), 40);
  for (guint8 pt : late.pts) EXPECT_EQ(pt, 98);
}

TEST(Fanout, RemovedViewerGetsNothingMoreAndLoadIsRebalanced) {
  Fanout f("video", 2);
  start_stream(f, 96);
  Receiver a(0), b(1), c(2);
  auto ba = f.add_branch(a.pad.get(), -1);
  auto bb = f.add_branch(b.pad.get(), -1);
  f.set_ready(ba);
  f.set_ready(bb);
  EXPECT_EQ(f.shard_loads(), (std::vector<guint>{1, 1}));
  // Packets flow from another thread while the viewer is removed.
  std::thread pusher([&] { send_packets(f, 1, 2000, 96); });
  ASSERT_TRUE(test::wait_for([&] { return b.count() > 10; }, 5000));
  f.remove_branch(bb);
  const size_t at_removal = b.count();
  pusher.join();
  // Pushed as fast as the CPU goes, a sender may drop what fell 150 ms
  // behind; the live edge (the last packet) always arrives.
  ASSERT_TRUE(test::wait_for(
      [&] {
        std::lock_guard<std::mutex> g(a.lock);
        return !a.seqs.empty() && a.seqs.back() == 2000;
      },
      10000));
  EXPECT_EQ(b.count(), at_removal) << "a removed viewer received packets";
  // The freed shard takes the next viewer.
  auto bc = f.add_branch(c.pad.get(), -1);
  EXPECT_EQ(f.shard_loads(), (std::vector<guint>{1, 1}));
  EXPECT_EQ(bc->shard, bb->shard);
}

TEST(Fanout, SenderFallingBehindDropsOldestMediaAndKeepsTheLiveEdge) {
  Fanout f("video", 2);
  start_stream(f, 96);
  Receiver other(0), slow(1);
  auto bi = f.add_branch(other.pad.get(), -1);
  auto bs = f.add_branch(slow.pad.get(), -1);
  ASSERT_NE(bs->shard, bi->shard);
  f.set_ready(bi);
  f.set_ready(bs);
  // The slow viewer's sender is stuck for 400 ms inside its first push
  // (a CPU that cannot keep up), while 30 packets a second keep coming.
  std::mutex gate;
  std::unique_lock<std::mutex> held(gate);
  gst_pad_add_probe(slow.pad.get(), GST_PAD_PROBE_TYPE_BUFFER_LIST,
                    +[](GstPad *, GstPadProbeInfo *, gpointer m) -> GstPadProbeReturn {
                      std::lock_guard<std::mutex> wait(*static_cast<std::mutex *>(m));
                      return GST_PAD_PROBE_OK;
                    },
                    &gate, nullptr);
  guint16 seq = 1;
  const gint64 start = g_get_monotonic_time();
  while (g_get_monotonic_time() - start < 400 * 1000) {
    send_packets(f, seq++, 1, 96);
    test::wait_for([] { return false; }, 33);
  }
  held.unlock();
  const guint16 last = seq - 1;
  auto last_seq = [](Receiver &r) {
    std::lock_guard<std::mutex> g(r.lock);
    return r.seqs.empty() ? 0 : r.seqs.back();
  };
  ASSERT_TRUE(test::wait_for([&] { return last_seq(slow) == last; }, 5000)) << last_seq(slow);
  ASSERT_TRUE(test::wait_for([&] { return other.count() == size_t(last); }, 5000))
      << "the other shard lost packets: " << other.count();
  EXPECT_GT(f.dropped_packets(), 0u) << "nothing older than 150 ms was dropped";
  std::lock_guard<std::mutex> g(slow.lock);
  EXPECT_LT(slow.seqs.size(), size_t(last));
  EXPECT_EQ(slow.seqs.size() + f.dropped_packets(), size_t(last));
  for (size_t k = 1; k < slow.seqs.size(); k++) EXPECT_GT(slow.seqs[k], slow.seqs[k - 1]);
}
