#include "direct-rtcp.h"

#include <agent.h>

#include <algorithm>
#include <map>
#include <mutex>

#include "byte-order.h"
#include "ice-receive-src.h"

GST_DEBUG_CATEGORY_EXTERN(whepserversink_debug);
#define GST_CAT_DEFAULT whepserversink_debug

namespace whipwhep {

namespace {

// RTCP packet types (RFC 3550, 4585) and feedback formats.
constexpr guint8 kSr = 200, kRr = 201, kSdes = 202, kBye = 203, kRtpfb = 205, kPsfb = 206;
constexpr guint8 kFmtNack = 1, kFmtPli = 1, kFmtFir = 4;
constexpr guint kReportIntervalMs = 1000;

void put32(std::vector<guint8> &out, guint32 v) {
  for (int i = 0; i < 4; i++) out.push_back(guint8(v >> (24 - 8 * i)));
}

// Wall-clock time as a 64-bit NTP timestamp (RFC 3550 4).
guint64 ntp_now() {
  const gint64 us = g_get_real_time();
  const guint64 secs = guint64(us / G_USEC_PER_SEC) + 2208988800ull;
  const guint64 frac = (guint64(us % G_USEC_PER_SEC) << 32) / G_USEC_PER_SEC;
  return (secs << 32) | frac;
}

}  // namespace

// The SR timer of one agent context, shared by the viewers on it.
class DirectRtcp::Ticker {
 public:
  // The context's ticker, made on first use; it goes with its last viewer.
  static std::shared_ptr<Ticker> of(GMainContext *context) {
    std::lock_guard<std::mutex> g(registry_lock());
    auto &weak = registry()[context];
    std::shared_ptr<Ticker> t = weak.lock();
    if (!t) {
      t.reset(new Ticker(context));
      weak = t;
      // The source holds the ticker weakly: the last viewer's reference
      // ends it.
      g_source_set_callback(
          t->timer_.get(),
          +[](gpointer data) -> gboolean {
            if (auto self = static_cast<std::weak_ptr<Ticker> *>(data)->lock()) self->tick();
            return G_SOURCE_CONTINUE;
          },
          new std::weak_ptr<Ticker>(t),
          +[](gpointer data) { delete static_cast<std::weak_ptr<Ticker> *>(data); });
      g_source_attach(t->timer_.get(), context);
    }
    return t;
  }
  ~Ticker() {
    g_source_destroy(timer_.get());
    std::lock_guard<std::mutex> g(registry_lock());
    auto it = registry().find(context_.get());
    if (it != registry().end() && it->second.expired()) registry().erase(it);
  }
  void add(const std::shared_ptr<DirectRtcp> &r) {
    std::lock_guard<std::mutex> g(lock_);
    viewers_.push_back(r);
  }
  void remove(const DirectRtcp *r) {
    std::lock_guard<std::mutex> g(lock_);
    viewers_.erase(std::remove_if(viewers_.begin(), viewers_.end(),
                                  [r](const std::weak_ptr<DirectRtcp> &w) {
                                    auto v = w.lock();
                                    return !v || v.get() == r;
                                  }),
                   viewers_.end());
  }

 private:
  explicit Ticker(GMainContext *context)
      : context_(gobj::ref(context)), timer_(gobj::adopt(g_timeout_source_new(kReportIntervalMs))) {}
  void tick() {
    std::vector<std::shared_ptr<DirectRtcp>> now;
    {
      std::lock_guard<std::mutex> g(lock_);
      for (auto &w : viewers_)
        if (auto v = w.lock()) now.push_back(std::move(v));
    }
    for (auto &v : now) v->send_reports();
  }
  static std::mutex &registry_lock() {
    static std::mutex m;
    return m;
  }
  static std::map<GMainContext *, std::weak_ptr<Ticker>> &registry() {
    static auto *r = new std::map<GMainContext *, std::weak_ptr<Ticker>>();  // never destroyed
    return *r;
  }
  gobj::Ref<GMainContext> context_;
  gobj::Ref<GSource> timer_;
  std::mutex lock_;
  std::vector<std::weak_ptr<DirectRtcp>> viewers_;
};

std::shared_ptr<DirectRtcp> DirectRtcp::start(Setup setup, Hooks hooks, std::string *why) {
  std::shared_ptr<DirectRtcp> r(new DirectRtcp());
  if (!setup.sender || !setup.sender->agent() || !setup.sender->stream_id())
    return *why = "no direct path", nullptr;
  if (setup.legs.empty()) return *why = "no legs", nullptr;
  if (!r->viewer_srtcp_.init(setup.viewer_key.data(), setup.viewer_key.size(), 10,
                             setup.rtcp_tag_len))
    return *why = "unusable SRTCP key of the viewer", nullptr;
  NiceAgent *agent = setup.sender->agent();
  gpointer context = nullptr;
  g_object_get(agent, "main-context", &context, nullptr);
  r->context_ = gobj::ref(context ? static_cast<GMainContext *>(context) : g_main_context_default());
  r->setup_ = std::move(setup);
  r->hooks_ = std::move(hooks);
  // Replaces whatever receive callback the component had (the released
  // webrtcbin's ice-receive-src detached its own when it stopped).
  if (!nice_agent_attach_recv(agent, r->setup_.sender->stream_id(), 1, r->context_.get(),
                              &DirectRtcp::on_receive, r.get()))
    return *why = "the viewer's ICE stream is gone", nullptr;
  r->attached_ = true;
  r->ticker_ = Ticker::of(r->context_.get());
  r->ticker_->add(r);
  // The first SR now: the viewer maps RTP to wall-clock time (audio/video
  // sync) from it, and rtpsession's last one may be a second old.
  r->send_reports();
  return r;
}

DirectRtcp::~DirectRtcp() { stop(); }

void DirectRtcp::stop() {
  if (!attached_) return;
  attached_ = false;
  nice_agent_attach_recv(setup_.sender->agent(), setup_.sender->stream_id(), 1, context_.get(),
                         nullptr, nullptr);
  if (ticker_) ticker_->remove(this);
  // A datagram read before the detach (or a tick) may still be running.
  wait_for_main_context(context_.get());
  ticker_.reset();
}

void DirectRtcp::on_receive(NiceAgent *, guint, guint, guint len, gchar *data, gpointer self) {
  const auto *p = reinterpret_cast<const guint8 *>(data);
  // RFC 5761: RTCP types 192-223 in the second byte. DTLS (a late
  // handshake retransmission, or an alert) and anything else is dropped.
  if (len < 8 || (p[0] & 0xc0) != 0x80 || p[1] < 192 || p[1] > 223) return;
  static_cast<DirectRtcp *>(self)->handle(p, len);
}

void DirectRtcp::handle(const guint8 *srtcp, gsize len) {
  guint8 plain[1500];
  if (len > sizeof plain) return;
  const gsize n = viewer_srtcp_.unprotect_rtcp(srtcp, len, plain);
  if (n == 0) {
    rejected_++;
    return;
  }
  reports_++;
  if (hooks_.on_report) hooks_.on_report();
  const guint32 now_mid = guint32(ntp_now() >> 16);
  for (gsize off = 0; off + 4 <= n;) {
    const guint8 *h = plain + off;
    const gsize size = 4 * (gsize((h[2] << 8) | h[3]) + 1);
    if ((h[0] & 0xc0) != 0x80 || off + size > n) break;
    const guint8 count = h[0] & 0x1f, type = h[1];
    if ((type == kRr || type == kSr) && size >= 8) {
      // Report blocks about our streams: RTT from the SR they echo
      // (RFC 3550 6.4.1: A - LSR - DLSR, in 1/65536 s).
      const gsize first = type == kSr ? 28 : 8;
      for (guint i = 0; i < count && first + 24 * (i + 1) <= size; i++) {
        const guint8 *b = h + first + 24 * i;
        const guint32 lsr = read_be32(b + 16), dlsr = read_be32(b + 20);
        if (lsr == 0) continue;
        const guint32 rtt = now_mid - lsr - dlsr;
        if (rtt < 60u * 65536u) rtt_ = rtt / 65536.0;
      }
    } else if (type == kRtpfb && count == kFmtNack && size >= 12) {
      nacks_++;
      if (hooks_.on_nack) hooks_.on_nack(read_be32(h + 8), h + 12, size - 12);
    } else if (type == kPsfb && count == kFmtPli && size >= 12) {
      if (hooks_.on_keyframe_request) hooks_.on_keyframe_request(read_be32(h + 8));
    } else if (type == kPsfb && count == kFmtFir && size >= 20) {
      // The media SSRC is in the FCI entry (RFC 5104 4.3.1).
      if (hooks_.on_keyframe_request) hooks_.on_keyframe_request(read_be32(h + 12));
    } else if (type == kBye) {
      if (hooks_.on_bye) hooks_.on_bye();
    }
    off += size;
  }
}

void DirectRtcp::send_reports() {
  const guint64 ntp = ntp_now();
  const gint64 now_us = g_get_monotonic_time();
  for (const auto &leg : setup_.legs) {
    const Fanout::Branch &b = *leg.branch;
    const gint64 sent_us = b.last_sent_us.load(std::memory_order_acquire);
    if (sent_us == 0 || b.dead) continue;  // nothing sent yet: no time to map
    const guint32 ssrc = b.last_ssrc.load(std::memory_order_relaxed);
    // The RTP time that corresponds to now: the last packet's, moved on by
    // the running time since its timestamp (as rtpsession computes it), or
    // failing that by the time since it was sent.
    const GstClockTime pts_rt = b.last_pts_rt.load(std::memory_order_relaxed);
    const GstClockTime now_rt = leg.clock_element
                                    ? gst_element_get_current_running_time(leg.clock_element.get())
                                    : GST_CLOCK_TIME_NONE;
    const gint64 since_ns = GST_CLOCK_TIME_IS_VALID(pts_rt) && GST_CLOCK_TIME_IS_VALID(now_rt)
                                ? GST_CLOCK_DIFF(pts_rt, now_rt)
                                : (now_us - sent_us) * 1000;
    const guint32 rtptime = b.last_rtptime.load(std::memory_order_relaxed) +
                            guint32(since_ns * gint64(leg.clock_rate) / GST_SECOND);
    const guint64 packets = b.packets.load(), bytes = b.bytes.load();
    std::vector<guint8> p = {0x80, kSr, 0x00, 0x06};  // SR without report blocks: 7 words
    put32(p, ssrc);
    put32(p, guint32(ntp >> 32));
    put32(p, guint32(ntp));
    put32(p, rtptime);
    put32(p, guint32(packets));
    put32(p, guint32(bytes > 12 * packets ? bytes - 12 * packets : 0));  // payload octets
    // SDES with the CNAME (RFC 3550 6.1: every compound packet has one).
    const gsize sdes_at = p.size();
    const std::string &cname = setup_.cname;
    const gsize name_len = std::min<gsize>(cname.size(), 255);
    p.insert(p.end(), {0x81, kSdes, 0x00, 0x00});
    put32(p, ssrc);
    p.push_back(1);  // CNAME
    p.push_back(guint8(name_len));
    p.insert(p.end(), cname.begin(), cname.begin() + name_len);
    p.push_back(0);  // end of the items
    while (p.size() % 4) p.push_back(0);
    const gsize words = (p.size() - sdes_at) / 4 - 1;
    p[sdes_at + 2] = guint8(words >> 8);
    p[sdes_at + 3] = guint8(words);
    setup_.sender->send_rtcp(p.data(), p.size());
  }
}

}  // namespace whipwhep
