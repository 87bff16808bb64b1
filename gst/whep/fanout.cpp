#include "fanout.h"

#include "byte-order.h"
#include "direct-send.h"
#include "send-batch.h"

#include <gst/video/video.h>
#include <pthread.h>

#include <condition_variable>
#include <deque>
#include <thread>

GST_DEBUG_CATEGORY_STATIC(fanout_debug);
#define GST_CAT_DEFAULT fanout_debug

namespace whipwhep {

namespace {

void ensure_debug() {
  static gsize init = 0;
  if (g_once_init_enter(&init)) {
    GST_DEBUG_CATEGORY_INIT(fanout_debug, "whipwhep-fanout", 0, "WHEP per-viewer fan-out");
    g_once_init_leave(&init, 1);
  }
}

// Length of the RTP header (fixed part, CSRCs, extension), 0 if not RTP.
gsize rtp_header_length(GstBuffer *buf) {
  guint8 b[4];
  const gsize size = gst_buffer_get_size(buf);
  if (size < 12 || gst_buffer_extract(buf, 0, b, 1) != 1 || (b[0] & 0xc0) != 0x80) return 0;
  gsize len = 12 + 4 * (b[0] & 0x0f);
  if (b[0] & 0x10) {
    if (gst_buffer_extract(buf, len, b, 4) != 4) return 0;
    len += 4 + 4 * ((gsize(b[2]) << 8) | b[3]);
  }
  return len <= size ? len : 0;
}

GstEvent *caps_event_with_pt(GstEvent *caps_event, int pt) {
  if (pt < 0) return gst_event_ref(caps_event);
  GstCaps *caps = nullptr;
  gst_event_parse_caps(caps_event, &caps);
  gobj::Ref<GstCaps> copy = gobj::adopt(gst_caps_copy(caps));
  for (guint i = 0; i < gst_caps_get_size(copy.get()); i++)
    gst_structure_set(gst_caps_get_structure(copy.get(), i), "payload", G_TYPE_INT, pt, nullptr);
  return gst_event_new_caps(copy.get());
}

}  // namespace

// One sender thread and its bounded queue.
class Fanout::Shard {
 public:
  // Latency is a budget: media that waited longer than this for a busy
  // sender (the CPU cannot keep up) is dropped, oldest first, and counted,
  // instead of delaying everything behind it. A cap on the count bounds
  // memory whatever the timestamps say.
  static constexpr gint64 kMaxQueuedUs = 150 * 1000;
  static constexpr size_t kMaxQueued = 256;

  Shard(Fanout *owner, guint index) : owner_(owner), index_(index) {
    thread_ = std::thread([this] { run(); });
  }
  ~Shard() {
    {
      std::lock_guard<std::mutex> g(lock_);
      stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }

  void push(const Item &item) {
    const gint64 now = g_get_monotonic_time();
    {
      std::lock_guard<std::mutex> g(lock_);
      // Oldest first, while too old or too many; events are never dropped
      // (they carry the caps), only skipped.
      for (auto it = queue_.begin(); it != queue_.end();) {
        if (now - it->queued_us <= kMaxQueuedUs && queue_.size() < kMaxQueued) break;
        if (it->list) {
          dropped_ += gst_buffer_list_length(it->list.get());
          it = queue_.erase(it);
        } else {
          ++it;
        }
      }
      queue_.push_back(item);
      queue_.back().queued_us = now;
    }
    wake_.notify_one();
  }

  guint64 dropped() const {
    std::lock_guard<std::mutex> g(lock_);
    return dropped_;
  }

 private:
  void run() {
    const std::string name = "fanout-" + std::to_string(index_);
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
    std::deque<Item> batch;
    for (;;) {
      {
        std::unique_lock<std::mutex> g(lock_);
        wake_.wait(g, [this] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        batch.swap(queue_);
      }
      // Consecutive media items with the same payload type become one list:
      // one push per branch for everything that queued up meanwhile.
      while (!batch.empty()) {
        if (batch.front().event) {
          owner_->deliver(index_, batch.front());
          batch.pop_front();
          continue;
        }
        const int spt = batch.front().spt;
        gobj::Ref<GstBufferList> merged;
        while (!batch.empty() && batch.front().list && batch.front().spt == spt) {
          GstBufferList *l = batch.front().list.get();
          if (!merged) {
            merged = batch.front().list;
          } else {
            if (!gst_buffer_list_is_writable(merged.get()))
              merged = gobj::adopt(gst_buffer_list_copy(merged.get()));
            for (guint i = 0; i < gst_buffer_list_length(l); i++)
              gst_buffer_list_add(merged.get(), gst_buffer_ref(gst_buffer_list_get(l, i)));
          }
          batch.pop_front();
        }
        owner_->deliver_list(index_, merged.get(), spt);
      }
    }
  }

  Fanout *owner_;
  guint index_;
  mutable std::mutex lock_;
  std::condition_variable wake_;
  std::deque<Item> queue_;
  bool stop_ = false;
  guint64 dropped_ = 0;
  std::thread thread_;
};

Fanout::Fanout(const std::string &name, guint threads, GstClockTime keyframe_interval)
    : name_(name), keyframe_interval_(keyframe_interval), list_(std::make_shared<List>()) {
  ensure_debug();
  if (threads == 0) threads = std::max(1u, g_get_num_processors());
  shard_load_.assign(threads, 0);
  if (threads > 1)
    for (guint i = 0; i < threads; i++) shards_.push_back(std::make_unique<Shard>(this, i));
  sink_ = gobj::sink(gst_pad_new(("fanout-" + name).c_str(), GST_PAD_SINK));
  gst_pad_set_element_private(sink_.get(), this);
  gst_pad_set_chain_function(sink_.get(), &Fanout::chain);
  gst_pad_set_chain_list_function(sink_.get(), &Fanout::chain_list);
  gst_pad_set_event_function(sink_.get(), &Fanout::sink_event);
  gst_pad_set_query_function(sink_.get(), &Fanout::sink_query);
  gst_pad_set_active(sink_.get(), TRUE);
}

Fanout::~Fanout() {
  gst_pad_set_active(sink_.get(), FALSE);
  gst_pad_set_element_private(sink_.get(), nullptr);
  shards_.clear();  // joins the sender threads: nothing is delivered after this
  std::shared_ptr<const List> l;
  {
    std::lock_guard<std::mutex> g(lock_);
    l = list_;
  }
  for (const auto &b : *l) remove_branch(b);
}

guint64 Fanout::dropped_packets() const {
  guint64 n = 0;
  for (const auto &s : shards_) n += s->dropped();
  return n;
}

std::vector<guint> Fanout::shard_loads() const {
  std::lock_guard<std::mutex> g(lock_);
  return shard_load_;
}

gobj::Ref<GstCaps> Fanout::caps() const {
  std::lock_guard<std::mutex> g(lock_);
  return caps_;
}

int Fanout::stream_pt() const {
  std::lock_guard<std::mutex> g(lock_);
  return pt_;
}

std::shared_ptr<const Fanout::List> Fanout::snapshot() const {
  std::lock_guard<std::mutex> g(lock_);
  return list_;
}

GstBuffer *Fanout::with_payload_type(GstBuffer *buf, guint8 pt) {
  const gsize hdr = rtp_header_length(buf);
  if (hdr == 0) return gst_buffer_ref(buf);
  GstBuffer *out = gst_buffer_new();
  gst_buffer_copy_into(out, buf,
                       GstBufferCopyFlags(GST_BUFFER_COPY_FLAGS | GST_BUFFER_COPY_TIMESTAMPS |
                                          GST_BUFFER_COPY_META),
                       0, gsize(-1));
  // Only the header is copied: a dozen bytes per packet and viewer.
  GstMemory *head = gst_allocator_alloc(nullptr, hdr, nullptr);
  GstMapInfo map;
  if (gst_memory_map(head, &map, GST_MAP_WRITE)) {
    gst_buffer_extract(buf, 0, map.data, hdr);
    map.data[1] = guint8((map.data[1] & 0x80) | (pt & 0x7f));
    gst_memory_unmap(head, &map);
  }
  gst_buffer_append_memory(out, head);
  const gsize size = gst_buffer_get_size(buf);
  if (size > hdr) gst_buffer_copy_into(out, buf, GST_BUFFER_COPY_MEMORY, hdr, size - hdr);
  return out;
}

std::shared_ptr<Fanout::Branch> Fanout::add_branch(GstPad *peer, int pt) {
  auto b = std::make_shared<Branch>();
  b->pt = pt;
  b->owner = this;
  static std::atomic<guint> serial{0};
  std::string pad_name = "fanout-" + name_ + "-" + std::to_string(serial++);
  b->src = gobj::sink(gst_pad_new(pad_name.c_str(), GST_PAD_SRC));
  gst_pad_set_element_private(b->src.get(), b.get());
  gst_pad_set_event_function(b->src.get(), &Fanout::src_event);
  gst_pad_set_query_function(b->src.get(), &Fanout::src_query);
  gst_pad_set_active(b->src.get(), TRUE);
  {
    std::lock_guard<std::mutex> g(lock_);
    // The least loaded shard.
    for (guint i = 1; i < shard_load_.size(); i++)
      if (shard_load_[i] < shard_load_[b->shard]) b->shard = i;
    shard_load_[b->shard]++;
    if (stream_start_) gst_pad_store_sticky_event(b->src.get(), stream_start_.get());
    if (caps_event_) {
      gobj::Ref<GstEvent> ev = gobj::adopt(caps_event_with_pt(caps_event_.get(), pt));
      gst_pad_store_sticky_event(b->src.get(), ev.get());
    }
    if (segment_) gst_pad_store_sticky_event(b->src.get(), segment_.get());
    auto l = std::make_shared<List>(*list_);
    l->push_back(b);
    list_ = l;
  }
  if (peer && GST_PAD_LINK_FAILED(gst_pad_link_full(b->src.get(), peer, GST_PAD_LINK_CHECK_NOTHING)))
    GST_WARNING("fan-out %s: cannot link branch to %s", name_.c_str(), GST_PAD_NAME(peer));
  return b;
}

void Fanout::set_ready(const std::shared_ptr<Branch> &b) {
  if (b->ready.exchange(true)) return;
  GST_DEBUG("fan-out %s: branch %s ready", name_.c_str(), GST_PAD_NAME(b->src.get()));
  request_keyframe();
}

void Fanout::detach_branch(const std::shared_ptr<Branch> &b) {
  b->dead = true;
  b->ready = false;
  {
    std::lock_guard<std::mutex> g(lock_);
    auto l = std::make_shared<List>();
    for (const auto &x : *list_)
      if (x != b) l->push_back(x);
    if (l->size() != list_->size() && shard_load_[b->shard] > 0) shard_load_[b->shard]--;
    list_ = l;
  }
}

void Fanout::release_branch(const std::shared_ptr<Branch> &b) {
  // Wait for a push already in flight into this branch to return.
  { std::lock_guard<std::mutex> g(b->push_lock); }
  gobj::Ref<GstPad> peer = gobj::adopt(gst_pad_get_peer(b->src.get()));
  if (peer) gst_pad_unlink(b->src.get(), peer.get());
  gst_pad_set_active(b->src.get(), FALSE);
  gst_pad_set_element_private(b->src.get(), nullptr);
}

void Fanout::unlink_branch(const std::shared_ptr<Branch> &b) {
  std::lock_guard<std::mutex> g(b->push_lock);  // no push into it meanwhile
  gobj::Ref<GstPad> peer = gobj::adopt(gst_pad_get_peer(b->src.get()));
  if (peer) gst_pad_unlink(b->src.get(), peer.get());
}

void Fanout::store_sticky(Branch &b, GstEvent *event) const {
  // Under b.push_lock. Ready branches get the event now; others keep it
  // sticky on their pad, sent ahead of their first buffer.
  if (b.dead) return;
  if (b.ready)
    gst_pad_push_event(b.src.get(), gst_event_ref(event));
  else
    gst_pad_store_sticky_event(b.src.get(), event);
}

void Fanout::request_keyframe() {
  bool send = false;
  {
    std::lock_guard<std::mutex> g(key_lock_);
    const gint64 now = g_get_monotonic_time();
    if (last_keyframe_us_ == 0 || now - last_keyframe_us_ >= gint64(keyframe_interval_ / 1000)) {
      last_keyframe_us_ = now;
      keyframe_pending_ = false;
      send = true;
    } else {
      keyframe_pending_ = true;
      keyframe_pending_hint_ = true;
    }
  }
  if (send) send_keyframe_request();
}

void Fanout::maybe_send_pending_keyframe() {
  if (!keyframe_pending_hint_.load(std::memory_order_relaxed)) return;
  bool send = false;
  {
    std::lock_guard<std::mutex> g(key_lock_);
    const gint64 now = g_get_monotonic_time();
    if (keyframe_pending_ && now - last_keyframe_us_ >= gint64(keyframe_interval_ / 1000)) {
      last_keyframe_us_ = now;
      keyframe_pending_ = false;
      keyframe_pending_hint_ = false;
      send = true;
    }
  }
  if (send) send_keyframe_request();
}

void Fanout::send_keyframe_request() {
  guint count;
  {
    std::lock_guard<std::mutex> g(key_lock_);
    count = ++key_count_;
  }
  keyframes_sent_++;
  GST_DEBUG("fan-out %s: asking upstream for a keyframe (#%u)", name_.c_str(), count);
  gst_pad_push_event(sink_.get(),
                     gst_video_event_new_upstream_force_key_unit(GST_CLOCK_TIME_NONE, TRUE, count));
}

void Fanout::dispatch(Item item) {
  if (shards_.empty()) {
    deliver(0, item);  // one shard: inline, on the streaming thread
    return;
  }
  for (const auto &shard : shards_) shard->push(item);
}

void Fanout::deliver(guint shard, const Item &item) const {
  if (item.list) {
    deliver_list(shard, item.list.get(), item.spt);
    return;
  }
  auto l = snapshot();
  const bool caps = GST_EVENT_TYPE(item.event.get()) == GST_EVENT_CAPS;
  for (const auto &b : *l) {
    if (b->shard != shard) continue;
    gobj::Ref<GstEvent> per =
        caps ? gobj::adopt(caps_event_with_pt(item.event.get(), b->pt)) : item.event;
    std::lock_guard<std::mutex> g(b->push_lock);
    store_sticky(*b, per.get());
  }
}

void Fanout::deliver_list(guint shard, GstBufferList *list, int spt) const {
  auto l = snapshot();
  const guint n = gst_buffer_list_length(list);
  const gsize size = gst_buffer_list_calculate_size(list);
  // Read out of the buffers once for every direct viewer of this shard.
  static thread_local DirectSender::Plain plain;
  bool plain_ready = false;
  // The direct viewers' packets leave together at the end (send-batch.h).
  SendBatch *batch = SendBatch::for_this_thread();
  // The list's last packet, for the SRs (Branch): its SSRC and RTP time,
  // read once plain is, and its running time.
  guint32 last_ssrc = 0, last_rtptime = 0;
  GstClockTime pts_rt = GST_CLOCK_TIME_NONE;
  if (GstBuffer *last = n ? gst_buffer_list_get(list, n - 1) : nullptr;
      last && GST_BUFFER_PTS_IS_VALID(last)) {
    std::lock_guard<std::mutex> g(lock_);
    const GstSegment *segment = nullptr;
    if (segment_) gst_event_parse_segment(segment_.get(), &segment);
    if (segment && segment->format == GST_FORMAT_TIME)
      pts_rt = gst_segment_to_running_time(segment, GST_FORMAT_TIME, GST_BUFFER_PTS(last));
  }
  const gint64 now_us = g_get_monotonic_time();
  for (const auto &b : *l) {
    if (b->shard != shard || !b->ready.load(std::memory_order_acquire)) continue;
    const bool rewrite = b->pt >= 0 && b->pt != spt;
    const bool direct = b->direct && b->direct->active();
    GstBufferList *out = nullptr;
    if (direct) {
      // Rewritten while it is protected, in the sender's scratch space;
      // room made in the batch before any viewer's lock is taken.
      if (batch) batch->reserve(n, DirectSender::kQueuedPacketSpace, n);
    } else if (!rewrite) {
      out = gst_buffer_list_ref(list);
    } else {
      out = gst_buffer_list_new_sized(n);
      for (guint i = 0; i < n; i++)
        gst_buffer_list_add(out, with_payload_type(gst_buffer_list_get(list, i), guint8(b->pt)));
    }
    std::lock_guard<std::mutex> g(b->push_lock);
    if (b->dead) {
      if (out) gst_buffer_list_unref(out);
      continue;
    }
    if (direct) {
      if (!plain_ready) {
        plain.assign(list);
        plain_ready = true;
        if (!plain.packets.empty() && plain.packets.back().second >= 12) {
          const guint8 *h = plain.bytes.data() + plain.packets.back().first;
          last_rtptime = read_be32(h + 4);
          last_ssrc = read_be32(h + 8);
        }
      }
      // Counted when handed over; what the batch then fails to send is
      // taken off b->packets again.
      const guint sent = b->direct->send(plain, rewrite ? b->pt : -1, batch, &b->packets);
      b->packets += sent;
      b->bytes += sent == n ? size : sent * (size / n);
      if (sent && last_ssrc) {
        b->last_ssrc.store(last_ssrc, std::memory_order_relaxed);
        b->last_rtptime.store(last_rtptime, std::memory_order_relaxed);
        b->last_pts_rt.store(pts_rt, std::memory_order_relaxed);
        b->last_sent_us.store(now_us, std::memory_order_release);
      }
      // One packet now and then through webrtcbin, for its RTCP (see
      // direct-send.h); dropped before srtpenc.
      GstBuffer *keep = b->direct->keepalive(b->leg, list, now_us);
      if (keep)
        gst_pad_push(b->src.get(), rewrite ? with_payload_type(keep, guint8(b->pt)) : gst_buffer_ref(keep));
      continue;
    }
    // A viewer's failure is its own: never propagated to the publisher.
    GstFlowReturn r = gst_pad_push_list(b->src.get(), out);
    if (r == GST_FLOW_OK) {
      b->packets += n;
      b->bytes += size;
    } else {
      GST_LOG("fan-out %s: branch %s: %s", name_.c_str(), GST_PAD_NAME(b->src.get()),
              gst_flow_get_name(r));
    }
  }
  if (batch) batch->flush();
}

void Fanout::remember(GstBufferList *list) {
  const guint n = gst_buffer_list_length(list);
  const gint64 now = g_get_monotonic_time();
  std::lock_guard<std::mutex> g(history_lock_);
  for (guint i = 0; i < n; i++) {
    GstBuffer *buf = gst_buffer_list_get(list, i);
    guint8 h[12];
    if (gst_buffer_extract(buf, 0, h, 12) != 12 || (h[0] & 0xc0) != 0x80) continue;
    Sent &slot = history_[((guint(h[2]) << 8) | h[3]) % kHistory];
    slot.seq = guint16((h[2] << 8) | h[3]);
    slot.ssrc = (guint32(h[8]) << 24) | (guint32(h[9]) << 16) | (guint32(h[10]) << 8) | h[11];
    slot.handed_us = now;
    slot.packet = gobj::ref(buf);
  }
}

gobj::Ref<GstBuffer> Fanout::recent(guint32 ssrc, guint16 seq, gint64 *handed_us) const {
  std::lock_guard<std::mutex> g(history_lock_);
  const Sent &slot = history_[seq % kHistory];
  if (!slot.packet || slot.seq != seq || slot.ssrc != ssrc) return {};
  if (handed_us) *handed_us = slot.handed_us;
  return slot.packet;
}

GstFlowReturn Fanout::chain(GstPad *pad, GstObject *, GstBuffer *buf) {
  GstBufferList *list = gst_buffer_list_new_sized(1);
  gst_buffer_list_add(list, buf);
  return chain_list(pad, nullptr, list);
}

GstFlowReturn Fanout::chain_list(GstPad *pad, GstObject *, GstBufferList *list) {
  auto *self = static_cast<Fanout *>(gst_pad_get_element_private(pad));
  Item item;
  item.list = gobj::adopt(list);
  if (!self) return GST_FLOW_FLUSHING;
  self->maybe_send_pending_keyframe();
  self->remember(list);
  {
    std::lock_guard<std::mutex> g(self->lock_);
    item.spt = self->pt_;
  }
  self->dispatch(std::move(item));
  return GST_FLOW_OK;
}

gboolean Fanout::sink_event(GstPad *pad, GstObject *, GstEvent *event) {
  auto *self = static_cast<Fanout *>(gst_pad_get_element_private(pad));
  gobj::Ref<GstEvent> ev = gobj::adopt(event);
  if (!self) return FALSE;
  switch (GST_EVENT_TYPE(event)) {
    case GST_EVENT_STREAM_START:
    case GST_EVENT_SEGMENT:
    case GST_EVENT_CAPS: {
      {
        std::lock_guard<std::mutex> g(self->lock_);
        if (GST_EVENT_TYPE(event) == GST_EVENT_STREAM_START) self->stream_start_ = ev;
        if (GST_EVENT_TYPE(event) == GST_EVENT_SEGMENT) self->segment_ = ev;
        if (GST_EVENT_TYPE(event) == GST_EVENT_CAPS) {
          GstCaps *caps = nullptr;
          gst_event_parse_caps(event, &caps);
          self->caps_event_ = ev;
          self->caps_ = gobj::ref(caps);
          int pt = -1;
          if (caps && gst_caps_get_size(caps) > 0)
            gst_structure_get_int(gst_caps_get_structure(caps, 0), "payload", &pt);
          self->pt_ = pt;
          GST_INFO("fan-out %s: stream caps %" GST_PTR_FORMAT, self->name_.c_str(), caps);
        }
      }
      // Through the shards, in order with the media around it.
      Item item;
      item.event = ev;
      self->dispatch(std::move(item));
      return TRUE;
    }
    default:
      // EOS, flushes, tags: the publisher's life cycle is not the viewers'.
      // A publisher that stops or reconnects leaves every viewer connected;
      // media resumes with the next buffers.
      return TRUE;
  }
}

gboolean Fanout::sink_query(GstPad *pad, GstObject *parent, GstQuery *query) {
  switch (GST_QUERY_TYPE(query)) {
    case GST_QUERY_CAPS: {
      GstCaps *filter = nullptr;
      gst_query_parse_caps(query, &filter);
      gobj::Ref<GstCaps> caps = gobj::adopt(gst_caps_new_empty_simple("application/x-rtp"));
      if (filter)
        caps = gobj::adopt(gst_caps_intersect_full(filter, caps.get(), GST_CAPS_INTERSECT_FIRST));
      gst_query_set_caps_result(query, caps.get());
      return TRUE;
    }
    case GST_QUERY_ACCEPT_CAPS: {
      GstCaps *caps = nullptr;
      gst_query_parse_accept_caps(query, &caps);
      gst_query_set_accept_caps_result(
          query, caps && gst_caps_get_size(caps) > 0 &&
                     gst_structure_has_name(gst_caps_get_structure(caps, 0), "application/x-rtp"));
      return TRUE;
    }
    default:
      return gst_pad_query_default(pad, parent, query);
  }
}

gboolean Fanout::src_event(GstPad *pad, GstObject *, GstEvent *event) {
  auto *b = static_cast<Branch *>(gst_pad_get_element_private(pad));
  gobj::Ref<GstEvent> ev = gobj::adopt(event);
  // A viewer's PLI/FIR arrives as an upstream GstForceKeyUnit from its
  // webrtcbin: coalesced with every other viewer's before going upstream.
  if (b && !b->dead && gst_video_event_is_force_key_unit(event)) {
    b->keyframe_requests++;
    b->owner->request_keyframe();
  }
  return TRUE;  // nothing else a viewer sends upstream concerns the publisher
}

gboolean Fanout::src_query(GstPad *pad, GstObject *parent, GstQuery *query) {
  auto *b = static_cast<Branch *>(gst_pad_get_element_private(pad));
  switch (GST_QUERY_TYPE(query)) {
    case GST_QUERY_CAPS: {
      gobj::Ref<GstCaps> caps;
      if (b && !b->dead) caps = b->owner->caps();
      if (caps) {
        caps = gobj::adopt(gst_caps_copy(caps.get()));
        if (b->pt >= 0)
          for (guint i = 0; i < gst_caps_get_size(caps.get()); i++)
            gst_structure_set(gst_caps_get_structure(caps.get(), i), "payload", G_TYPE_INT, b->pt,
                              nullptr);
      } else {
        caps = gobj::adopt(gst_caps_new_empty_simple("application/x-rtp"));
      }
      GstCaps *filter = nullptr;
      gst_query_parse_caps(query, &filter);
      if (filter)
        caps = gobj::adopt(gst_caps_intersect_full(filter, caps.get(), GST_CAPS_INTERSECT_FIRST));
      gst_query_set_caps_result(query, caps.get());
      return TRUE;
    }
    case GST_QUERY_LATENCY:
      if (b && !b->dead) return gst_pad_peer_query(b->owner->sink_pad(), query);
      return FALSE;
    default:
      return gst_pad_query_default(pad, parent, query);
  }
}

}  // namespace whipwhep
