#include "direct-send.h"

#include <agent.h>
#include <errno.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <gio/gio.h>

#include <algorithm>

#include "send-batch.h"
#include "shared-ice.h"
#include "webrtc-negotiation.h"

GST_DEBUG_CATEGORY_EXTERN(whepserversink_debug);
#define GST_CAT_DEFAULT whepserversink_debug

namespace whipwhep {

namespace {

// GstSrtpCipherType / GstSrtpAuthType values of srtpenc (gst-plugins-bad).
constexpr gint kCipherAes128Icm = 1;
constexpr gint kAuthHmacSha1_32 = 1, kAuthHmacSha1_80 = 2;

// The kernel's answer when a path cannot take a UDP GSO train of `packets`
// packets (e.g. an IPsec policy on the route: EIO).
bool gso_refused(int error, guint packets) {
  return packets > 1 && (error == EIO || error == EINVAL || error == ENOPROTOOPT);
}

}  // namespace

std::shared_ptr<DirectSender> DirectSender::activate(GstElement *webrtcbin, std::string *why) {
  gobj::Ref<GstElement> srtpenc = find_by_factory(webrtcbin, "srtpenc");
  if (!srtpenc) return *why = "no srtpenc in webrtcbin", nullptr;
  gobj::Ref<GstBuffer> key;
  gint cipher = -1, auth = -1, rtcp_cipher = -1, rtcp_auth = -1;
  g_object_get(srtpenc.get(), "key", key.out(), "rtp-cipher", &cipher, "rtp-auth", &auth,
               "rtcp-cipher", &rtcp_cipher, "rtcp-auth", &rtcp_auth, nullptr);
  if (!key) return *why = "the DTLS-SRTP keys are not exported yet", nullptr;
  auto sha1_tag = [](gint a) { return a == kAuthHmacSha1_80 ? 10 : a == kAuthHmacSha1_32 ? 4 : 0; };
  if (cipher != kCipherAes128Icm || !sha1_tag(auth))
    return *why = "SRTP profile other than AES-CM-128/HMAC-SHA1", nullptr;
  // RTCP is taken over only where it is protected as srtpenc would (the
  // receiver cannot tell the difference).
  const bool rtcp = rtcp_cipher == kCipherAes128Icm && sha1_tag(rtcp_auth);

  std::shared_ptr<DirectSender> d(new DirectSender());
  {
    GstMapInfo map;
    if (!gst_buffer_map(key.get(), &map, GST_MAP_READ)) return *why = "unreadable key", nullptr;
    const bool ok = d->srtp_.init(map.data, map.size, sha1_tag(auth),
                                  rtcp ? sha1_tag(rtcp_auth) : sha1_tag(auth));
    gst_buffer_unmap(key.get(), &map);
    if (!ok) return *why = "unexpected SRTP master key length", nullptr;
  }

  gobj::Ref<GObject> ice;
  g_object_get(webrtcbin, "ice-agent", ice.out(), nullptr);
  if (ice && g_object_class_find_property(G_OBJECT_GET_CLASS(ice.get()), "agent"))
    g_object_get(ice.get(), "agent", d->agent_.out(), nullptr);
  if (!d->agent_) return *why = "no libnice agent", nullptr;
  auto *agent = reinterpret_cast<NiceAgent *>(d->agent_.get());
  // max-bundle: one ICE stream, one component (rtcp-mux).
  d->stream_id_ = ice_stream_id_of(webrtcbin);
  NiceCandidate *local = nullptr, *remote = nullptr;
  if (!d->stream_id_ || !nice_agent_get_selected_pair(agent, d->stream_id_, 1, &local, &remote))
    return *why = "no selected ICE pair", nullptr;
  {
    std::lock_guard<std::mutex> g(d->lock_);
    d->set_path(local, remote);
  }
  // An ICE restart may select another pair later.
  // By weak pointer: the agent may be shared by other viewers, whose
  // threads emit this signal too, and GLib may still invoke a handler that
  // another thread has just disconnected.
  d->pair_handler_ = g_signal_connect_data(
      d->agent_.get(), "new-selected-pair-full", G_CALLBACK(&DirectSender::on_selected_pair),
      new std::weak_ptr<DirectSender>(d),
      +[](gpointer weak, GClosure *) { delete static_cast<std::weak_ptr<DirectSender> *>(weak); },
      GConnectFlags(0));

  // From now on webrtcbin's own RTP never reaches srtpenc: only keepalives
  // pass through webrtcbin (for rtpsession), and they are dropped here.
  GstIterator *it = gst_element_iterate_sink_pads(srtpenc.get());
  GValue item = G_VALUE_INIT;
  while (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
    auto *pad = GST_PAD(g_value_get_object(&item));
    if (g_str_has_prefix(GST_PAD_NAME(pad), "rtp_sink")) {
      gulong id = gst_pad_add_probe(
          pad, GstPadProbeType(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST),
          +[](GstPad *, GstPadProbeInfo *, gpointer) { return GST_PAD_PROBE_DROP; }, nullptr,
          nullptr);
      d->probes_.emplace_back(gobj::ref(pad), id);
    } else if (rtcp && g_str_has_prefix(GST_PAD_NAME(pad), "rtcp_sink")) {
      // rtpsession's SRs (and BYE): protected and sent here, not by libsrtp
      // on NSS (a new PK11 context per packet) and nicesink.
      gulong id = gst_pad_add_probe(
          pad, GST_PAD_PROBE_TYPE_BUFFER,
          +[](GstPad *, GstPadProbeInfo *info, gpointer data) {
            auto self = static_cast<std::weak_ptr<DirectSender> *>(data)->lock();
            if (!self) return GST_PAD_PROBE_OK;
            return self->send_rtcp(GST_PAD_PROBE_INFO_BUFFER(info)) ? GST_PAD_PROBE_DROP
                                                                     : GST_PAD_PROBE_OK;
          },
          new std::weak_ptr<DirectSender>(d),
          +[](gpointer weak) { delete static_cast<std::weak_ptr<DirectSender> *>(weak); });
      d->probes_.emplace_back(gobj::ref(pad), id);
    }
    g_value_reset(&item);
  }
  g_value_unset(&item);
  gst_iterator_free(it);
  if (d->probes_.empty()) {
    d->close();
    return *why = "srtpenc has no RTP sink pad", nullptr;
  }
  return d;
}

DirectSender::~DirectSender() {
  close();
  for (auto &p : probes_) gst_pad_remove_probe(p.first.get(), p.second);
}

void DirectSender::close() {
  if (pair_handler_ && agent_) {
    g_signal_handler_disconnect(agent_.get(), pair_handler_);
    pair_handler_ = 0;
  }
  {
    std::lock_guard<std::mutex> g(lock_);
    closed_ = true;
    socket_.reset();
    fd_ = -1;
  }
  // A sender thread's batch may still hold messages for the socket (by
  // descriptor): they leave before the caller lets the agent close it.
  std::unique_lock<std::mutex> g(flight_lock_);
  flight_cv_.wait(g, [this] { return inflight_.load() == 0; });
}

void DirectSender::inflight_done() {
  // closed_ is read after the decrement and written before close() reads
  // the count, so either close() sees 0 or this sees it closed and wakes it.
  if (inflight_.fetch_sub(1) == 1 && closed_.load()) {
    std::lock_guard<std::mutex> g(flight_lock_);
    flight_cv_.notify_all();
  }
}

void DirectSender::on_selected_pair(NiceAgent *, guint stream, guint component,
                                    NiceCandidate *local, NiceCandidate *remote, gpointer data) {
  std::shared_ptr<DirectSender> self = static_cast<std::weak_ptr<DirectSender> *>(data)->lock();
  if (!self || stream != self->stream_id_ || component != 1) return;
  std::lock_guard<std::mutex> g(self->lock_);
  if (!self->closed_) self->set_path(local, remote);
}

void DirectSender::set_path(NiceCandidate *local, NiceCandidate *remote) {
  // Under lock_. Plain UDP: sendmmsg on the pair's own socket. Anything
  // else (TURN relay, ICE-TCP framing): through libnice, which frames it.
  socket_.reset();
  fd_ = -1;
  // Tests force the libnice path (the one relayed pairs take) on loopback.
  const bool via_agent = g_getenv("WHIPWHEP_DIRECT_SEND_VIA_AGENT") != nullptr;
  if (!via_agent && local->transport == NICE_CANDIDATE_TRANSPORT_UDP &&
      local->type != NICE_CANDIDATE_TYPE_RELAYED) {
    GSocket *s = nice_agent_get_selected_socket(reinterpret_cast<NiceAgent *>(agent_.get()),
                                                stream_id_, 1);
    if (s) {
      socket_ = gobj::adopt(G_OBJECT(s));
      fd_ = g_socket_get_fd(s);
      nice_address_copy_to_sockaddr(&remote->addr, reinterpret_cast<sockaddr *>(&peer_));
      peer_len_ = peer_.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    }
  }
  GST_DEBUG("direct send: %s path", fd_ >= 0 ? "socket" : "libnice");
}

GstBuffer *DirectSender::keepalive(guint leg, GstBufferList *list, gint64 now) {
  if (leg >= G_N_ELEMENTS(last_keepalive_us_) || webrtcbin_muted_.load(std::memory_order_relaxed))
    return nullptr;
  gint64 last = last_keepalive_us_[leg].load(std::memory_order_relaxed);
  if (now - last < kKeepaliveUs) return nullptr;
  GstBuffer *pick = nullptr;
  const guint n = gst_buffer_list_length(list);
  for (guint i = n; i > 0 && !pick; i--) {
    guint8 b[2];
    GstBuffer *buf = gst_buffer_list_get(list, i - 1);
    if (gst_buffer_extract(buf, 0, b, 2) == 2 && (b[1] & 0x80)) pick = buf;
  }
  if (!pick && n > 0 && now - last >= kKeepaliveMaxUs) pick = gst_buffer_list_get(list, n - 1);
  if (!pick || !last_keepalive_us_[leg].compare_exchange_strong(last, now)) return nullptr;
  return pick;
}

void DirectSender::Plain::assign(GstBufferList *list) {
  const guint n = gst_buffer_list_length(list);
  packets.resize(n);
  const size_t total = gst_buffer_list_calculate_size(list);
  bytes.resize(total);
  size_t off = 0;
  for (guint i = 0; i < n; i++) {
    const size_t len =
        gst_buffer_extract(gst_buffer_list_get(list, i), 0, bytes.data() + off, total - off);
    packets[i] = {off, len};
    off += len;
  }
}

template <class Space, class Keep>
void DirectSender::protect_each(const Plain &batch, int pt, Space space, Keep keep) {
  for (const auto &packet : batch.packets) {
    const gsize size = packet.second;
    if (size > kMaxPacket) continue;
    // Header copied (payload type rewritten), payload encrypted straight
    // from the shared plain bytes into this viewer's copy.
    const size_t len = srtp_.protect(batch.bytes.data() + packet.first, size, space(),
                                     size + SrtpProtector::kMaxTrailer, pt);
    if (len) keep(len);
  }
}

guint DirectSender::send(const Plain &batch, int pt, SendBatch *queue,
                         std::atomic<guint64> *sent) {
  std::lock_guard<std::mutex> g(lock_);
  if (queue && fd_ >= 0) {
    const guint n = queue_locked(batch, pt, queue, sent);
    if (n != G_MAXUINT) return n;
  }
  return send_locked(batch, pt);
}

guint DirectSender::queue_locked(const Plain &batch, int pt, SendBatch *queue,
                                 std::atomic<guint64> *sent) {
  const guint n = guint(batch.packets.size());
  if (closed_.load(std::memory_order_relaxed) || n == 0) return 0;
  // The caller made room (SendBatch::reserve, outside this lock); if there
  // is none, this batch is too big for it: sent now.
  if (!queue->fits(n, kQueuedPacketSpace, n)) return G_MAXUINT;
  protect_each(batch, pt, [queue] { return queue->packet_space(); },
               [queue](size_t len) { queue->commit_packet(len); });
  iovec *iovs = queue->pending_iovs();
  const guint m = queue->pending_count();
  for (guint i = 0; i < m;) {
    const guint run = train_length(iovs, i, m);
    sockaddr_storage *name = nullptr;
    char *control = nullptr;
    size_t control_len = 0;
    msghdr *mh = queue->next_message(&name, &control, &control_len);
    // The address is copied: set_path() may change peer_ before the flush.
    memcpy(name, &peer_, peer_len_);
    fill_message(*mh, name, &iovs[i], run, control, control_len);
    if (!queue->queue(fd_, run, shared_from_this(), sent)) {
      // Not expected (fits() said there was room): the rest leaves now.
      Scratch &sc = scratch();
      sc.iovs.assign(iovs + i, iovs + m);
      const guint now = send_socket(0, m - i);
      queue->discard_pending();
      dropped_ += n - i - now;
      return i + now;
    }
    i += run;
  }
  dropped_ += n - m;
  return m;
}

void DirectSender::batch_done(const msghdr &msg, guint packets, int res,
                              std::atomic<guint64> *sent) {
  if (res >= 0) return;
  guint resent = 0;
  std::lock_guard<std::mutex> g(lock_);
  if (gso_refused(-res, packets) && fd_ >= 0 && gso_.load(std::memory_order_relaxed)) {
    // No GSO here: never again for this viewer; this message's packets
    // now one message each (the batch's arena still holds them).
    GST_INFO("direct send: UDP GSO refused (%s), one message per packet", g_strerror(-res));
    gso_.store(false, std::memory_order_relaxed);
    Scratch &sc = scratch();
    sc.iovs.assign(msg.msg_iov, msg.msg_iov + msg.msg_iovlen);
    resent = send_socket(0, guint(sc.iovs.size()));
  } else if (res != -EAGAIN && res != -EWOULDBLOCK) {
    GST_LOG("direct send: sendmsg: %s", g_strerror(-res));
  }
  const guint failed = packets - std::min(packets, resent);
  dropped_ += failed;
  if (sent) sent->fetch_sub(failed, std::memory_order_relaxed);
}

guint DirectSender::train_length(const iovec *iovs, guint i, guint m) const {
  guint run = 1;
  if (!gso_.load(std::memory_order_relaxed)) return run;
  const size_t seg = iovs[i].iov_len;
  // At most 64 segments and one UDP datagram's worth of bytes.
  const guint max_run = guint(std::min<size_t>(64, 65000 / std::max<size_t>(seg, 1)));
  while (i + run < m && run < max_run && iovs[i + run].iov_len == seg) run++;
  if (i + run < m && run < max_run && iovs[i + run].iov_len < seg) run++;  // a shorter last one
  return run;
}

void DirectSender::fill_message(msghdr &mh, sockaddr_storage *name, iovec *iov, guint run,
                                char *control, size_t control_len) const {
  mh = msghdr{};
  mh.msg_name = name;
  mh.msg_namelen = peer_len_;
  mh.msg_iov = iov;
  mh.msg_iovlen = run;
  if (run > 1) {
    mh.msg_control = control;
    mh.msg_controllen = control_len;
    cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_UDP;
    cm->cmsg_type = UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN(sizeof(guint16));
    const guint16 gso_size = guint16(iov[0].iov_len);
    memcpy(CMSG_DATA(cm), &gso_size, sizeof gso_size);
  }
}

guint DirectSender::resend(GstBuffer *packet, int pt) {
  gobj::Ref<GstBufferList> list = gobj::adopt(gst_buffer_list_new_sized(1));
  gst_buffer_list_add(list.get(), gst_buffer_ref(packet));
  Plain one;
  one.assign(list.get());
  std::lock_guard<std::mutex> g(lock_);
  guint n = send_locked(one, pt);
  resent_ += n;
  return n;
}

bool DirectSender::send_rtcp(GstBuffer *buffer) {
  // Released from its webrtcbin: what that webrtcbin still emits while it
  // stops (a BYE) must not reach the viewer, which would end the stream.
  if (webrtcbin_muted_.load(std::memory_order_acquire)) return true;
  guint8 packet[kMaxPacket];
  const gsize size = gst_buffer_get_size(buffer);
  if (size > kMaxPacket) return false;
  gst_buffer_extract(buffer, 0, packet, size);
  const int r = send_rtcp(packet, size);
  // Once this path has sent SRTCP, srtpenc must not: its index is behind
  // ours and the receiver would take its packets for replays.
  return r > 0 || rtcp_sent_.load() > 0;
}

int DirectSender::send_rtcp(const guint8 *plain, gsize size) {
  guint8 packet[kMaxPacket + SrtpProtector::kMaxRtcpTrailer];
  if (size > kMaxPacket) return 0;
  std::lock_guard<std::mutex> g(lock_);
  if (closed_.load(std::memory_order_relaxed)) return 0;
  const size_t len = srtp_.protect_rtcp(plain, size, packet, sizeof packet);
  if (len == 0) return 0;
  Scratch &sc = scratch();
  sc.iovs.resize(1);
  sc.iovs[0] = {packet, len};
  rtcp_sent_ += send_prepared(1);
  return 1;  // a full socket buffer drops it, as nicesink would
}

void DirectSender::mute_webrtcbin() { webrtcbin_muted_.store(true, std::memory_order_release); }

DirectSender::Scratch &DirectSender::scratch() {
  static thread_local Scratch s;
  return s;
}

guint DirectSender::send_locked(const Plain &batch, int pt) {
  Scratch &sc = scratch();
  const guint n = guint(batch.packets.size());
  if (closed_.load(std::memory_order_relaxed) || n == 0) return 0;
  sc.bytes.resize(n * kQueuedPacketSpace);
  sc.iovs.resize(n);
  guint m = 0;
  guint8 *p = sc.bytes.data();
  protect_each(batch, pt, [&p] { return p; }, [&](size_t len) {
    sc.iovs[m++] = {p, len};
    p += kQueuedPacketSpace;
  });
  const guint sent = send_prepared(m);
  dropped_ += n - sent;
  return sent;
}

guint DirectSender::send_prepared(guint m) {
  // Under lock_; the scratch's iovs[0..m) hold protected packets.
  if (fd_ >= 0) return send_socket(0, m);
  Scratch &sc = scratch();
  std::vector<GOutputVector> vecs(m);
  std::vector<NiceOutputMessage> out(m);
  for (guint i = 0; i < m; i++) {
    vecs[i] = {sc.iovs[i].iov_base, sc.iovs[i].iov_len};
    out[i] = {&vecs[i], 1};
  }
  gint r = nice_agent_send_messages_nonblocking(reinterpret_cast<NiceAgent *>(agent_.get()),
                                                stream_id_, 1, out.data(), m, nullptr, nullptr);
  return r > 0 ? guint(r) : 0;
}

guint DirectSender::send_socket(guint first, guint m) {
  Scratch &sc = scratch();
  // Under lock_; the scratch's iovs[first..m) hold the SRTP packets. A
  // frame's packets are all MTU-sized but the last: with UDP GSO they leave
  // as one datagram train (one route lookup, one skb through the stack) per
  // frame and viewer, cut into packets at gso_size. Without GSO (the kernel
  // or the path refuses it), one message per packet. Either way one sendmmsg.
  sc.msgs.resize(m);
  sc.controls.resize(m);
  guint nmsg = 0;
  for (guint i = first; i < m;) {
    const guint run = train_length(sc.iovs.data(), i, m);
    sc.msgs[nmsg].msg_len = 0;
    fill_message(sc.msgs[nmsg].msg_hdr, &peer_, &sc.iovs[i], run, sc.controls[nmsg].bytes,
                 sizeof sc.controls[nmsg].bytes);
    sc.runs.resize(nmsg + 1);
    sc.runs[nmsg] = run;
    nmsg++;
    i += run;
  }
  guint done = 0, sent = 0;
  while (done < nmsg) {
    int r = sendmmsg(fd_, sc.msgs.data() + done, nmsg - done, MSG_DONTWAIT);
    if (r > 0) {
      for (int k = 0; k < r; k++) sent += sc.runs[done + k];
      done += guint(r);
    } else if (r < 0 && errno == EINTR) {
      continue;
    } else if (r < 0 && gso_refused(errno, sc.runs[done])) {
      // No GSO here: never again for this viewer, and the rest of this
      // batch one message per packet.
      GST_INFO("direct send: UDP GSO refused (%s), one message per packet", g_strerror(errno));
      gso_.store(false, std::memory_order_relaxed);
      return sent + send_socket(first + sent, m);
    } else {
      // EAGAIN (the socket buffer is full: a slow viewer) or an error:
      // what is left of this batch is dropped, like libnice would.
      if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        GST_LOG("direct send: sendmmsg: %s", g_strerror(errno));
      break;
    }
  }
  return sent;
}

}  // namespace whipwhep
