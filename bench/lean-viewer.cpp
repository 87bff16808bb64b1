#include "lean-viewer.h"

#include <gio/gio.h>
#include <gst/rtp/rtp.h>
#include <gst/sdp/sdp.h>
#include <nice/agent.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <vector>

#include "bench-util.h"

namespace bench {
namespace {

constexpr int kPayloadType = 96;  // VP8, as the webrtcbin viewer offers

// RFC 7983 demultiplexing on the first byte.
bool is_dtls(guint8 b) { return b >= 20 && b <= 63; }
bool is_rtp_or_rtcp(guint8 b) { return b >= 128 && b <= 191; }
// RFC 5761: with rtcp-mux, RTCP packet types 192..223 sit in the second byte.
bool is_rtcp(guint8 b1) { return b1 >= 192 && b1 <= 223; }

std::string hex_colons(const guint8 *d, gsize n) {
  std::string s;
  for (gsize i = 0; i < n; i++) s += fmt(i ? ":%02X" : "%02X", d[i]);
  return s;
}

// sha-256 fingerprint of the certificate in a dtlssrtpdec's `pem` (all
// dtlsdecs without a `pem` share one generated certificate: computed once).
std::string fingerprint_of(GstElement *dec, std::string *err) {
  static std::string cached_pem, cached_fp;  // host thread only
  gobj::Unique<gchar> pem;
  g_object_get(dec, "pem", static_cast<gchar **>(gobj::out(pem)), nullptr);
  if (!pem) {
    *err = "dtlssrtpdec has no certificate";
    return {};
  }
  if (cached_pem == pem.get()) return cached_fp;
  gobj::Unique<GError> e;
  gobj::Ref<GTlsCertificate> cert = gobj::adopt(g_tls_certificate_new_from_pem(pem.get(), -1, gobj::out(e)));
  if (!cert) {
    *err = std::string("certificate: ") + (e ? e->message : "?");
    return {};
  }
  GByteArray *raw = nullptr;
  g_object_get(cert.get(), "certificate", &raw, nullptr);
  std::unique_ptr<GByteArray, decltype(&g_byte_array_unref)> der(raw, g_byte_array_unref);
  std::unique_ptr<GChecksum, decltype(&g_checksum_free)> sum(g_checksum_new(G_CHECKSUM_SHA256), g_checksum_free);
  if (!der || !sum) {
    *err = "certificate has no DER";
    return {};
  }
  g_checksum_update(sum.get(), der->data, der->len);
  guint8 digest[32];
  gsize len = sizeof digest;
  g_checksum_get_digest(sum.get(), digest, &len);
  cached_pem = pem.get();
  cached_fp = hex_colons(digest, len);
  return cached_fp;
}

// A source pad of ours linked to `peer`, active, with the initial events.
gobj::Ref<GstPad> feeding_pad(GstPad *peer, const std::string &stream_id, const char *caps) {
  gobj::Ref<GstPad> pad = gobj::sink(gst_pad_new(nullptr, GST_PAD_SRC));
  if (gst_pad_link(pad.get(), peer) != GST_PAD_LINK_OK) return nullptr;
  gst_pad_set_active(pad.get(), TRUE);
  gst_pad_push_event(pad.get(), gst_event_new_stream_start(stream_id.c_str()));
  if (caps) {
    gobj::Ref<GstCaps> c = gobj::adopt(gst_caps_from_string(caps));
    gst_pad_push_event(pad.get(), gst_event_new_caps(c.get()));
  }
  GstSegment seg;
  gst_segment_init(&seg, GST_FORMAT_TIME);
  gst_pad_push_event(pad.get(), gst_event_new_segment(&seg));
  return pad;  // sticky events are stored and sent ahead of the first buffer
}

// BENCH_LEAN_TRACE=1: set-up milestones on stderr (now_ms clock).
void trace(const char *format, ...) G_GNUC_PRINTF(1, 2);
void trace(const char *format, ...) {
  static const bool on = g_getenv("BENCH_LEAN_TRACE") != nullptr;
  if (!on) return;
  va_list ap;
  va_start(ap, format);
  gobj::Unique<gchar> msg(g_strdup_vprintf(format, ap));
  va_end(ap);
  fprintf(stderr, "%.1f lean %s\n", now_ms(), msg.get());
}

GstElement *make(const char *factory) { return gst_element_factory_make(factory, nullptr); }

}  // namespace

// ---------------------------------------------------------------- LeanViewer
LeanViewer::LeanViewer(LeanHost &host, std::string endpoint) : host_(host), endpoint_(std::move(endpoint)) {}

LeanViewer::~LeanViewer() { stop(); }

guint64 LeanViewer::lost() const {
  std::lock_guard<std::mutex> l(lock_);
  guint64 expected = seq_.expected(), got = packets_;
  return expected > got ? expected - got : 0;
}
bool LeanViewer::failed() const {
  std::lock_guard<std::mutex> l(lock_);
  return !error_.empty();
}
std::string LeanViewer::error() const {
  std::lock_guard<std::mutex> l(lock_);
  return error_;
}
ViewerTimes LeanViewer::times() const {
  std::lock_guard<std::mutex> l(lock_);
  return t_;
}
void LeanViewer::fail(const std::string &why) {
  {
    std::lock_guard<std::mutex> l(lock_);
    if (error_.empty()) error_ = why;
  }
  settle();
}

void LeanViewer::settle() {
  // stream_ is set (and the viewer counted) before the offer goes out.
  if (stream_ && !settled_.exchange(true)) host_.viewer_settled();
}

void LeanViewer::read_directly() {
  if (stopped_ || direct_fd_ >= 0) return;
  direct_socket_ = gobj::adopt(nice_agent_get_selected_socket(host_.agent(), stream_, 1));
  if (!direct_socket_) return trace("stream %u: no selected socket", stream_);  // libnice keeps reading it
  const int fd = g_socket_get_fd(direct_socket_.get());
  if (!host_.watch_direct(fd, stream_)) return direct_socket_.reset();  // libnice keeps reading it
  direct_fd_ = fd;
  // libnice's socket source moves to the parking context: from now on
  // only drain_direct() reads this socket.
  nice_agent_attach_recv(host_.agent(), stream_, 1, host_.parking_context(), &LeanViewer::on_nice_packet, this);
  trace("stream %u: read directly", stream_);
}

void LeanViewer::start() {
  std::string offer, err;
  host_.run_sync([&] {
    static std::atomic<guint> counter{0};
    const std::string id = fmt("lean-%d-%u", int(getpid()), counter.fetch_add(1));
    sample_ = host_.take_sample();
    NiceAgent *agent = host_.agent();
    stream_ = nice_agent_add_stream(agent, 1);
    if (!stream_) {
      err = "nice_agent_add_stream failed";
      return;
    }
    host_.add_viewer(stream_, this);
    nice_agent_attach_recv(agent, stream_, 1, g_main_context_get_thread_default(), &LeanViewer::on_nice_packet,
                           this);
    if (!nice_agent_gather_candidates(agent, stream_)) {
      err = "ICE gathering failed";
      return;
    }
    bin_ = gobj::sink(gst_bin_new(id.c_str()));
    dec_ = gobj::sink(make("dtlssrtpdec"));
    enc_ = gobj::sink(make("dtlssrtpenc"));
    sink_ = gobj::sink(make("nicesink"));
    if (!dec_ || !enc_ || !sink_) {
      err = "dtlssrtpdec, dtlssrtpenc or nicesink missing";
      return;
    }
    g_object_set(dec_.get(), "connection-id", id.c_str(), nullptr);
    g_object_set(enc_.get(), "connection-id", id.c_str(), nullptr);
    g_object_set(sink_.get(), "agent", agent, "stream", stream_, "component", 1u, "sync", FALSE, "async", FALSE,
                 nullptr);
    g_signal_connect(enc_.get(), "on-key-set", G_CALLBACK(+[](GstElement *, gpointer d) {
                       static_cast<LeanViewer *>(d)->keyed_ = true;
                       trace("stream %u: DTLS keys set", static_cast<LeanViewer *>(d)->stream_);
                     }),
                     this);
    // The encoder (and with it the DTLS role) waits for the answer.
    gst_element_set_locked_state(enc_.get(), TRUE);
    gst_element_set_locked_state(sink_.get(), TRUE);
    // (gst_bin_add takes its own reference: ours are not floating.)
    gst_bin_add_many(GST_BIN(bin_.get()), dec_.get(), enc_.get(), sink_.get(), nullptr);
    gst_element_link(enc_.get(), sink_.get());
    if (sample_) {
      // Decrypted SRTP/SRTCP of the sample are counted, then dropped.
      for (const char *pad_name : {"rtp_src", "rtcp_src"}) {
        GstElement *fs = make("fakesink");
        g_object_set(fs, "sync", FALSE, "async", FALSE, nullptr);
        gst_bin_add(GST_BIN(bin_.get()), fs);
        gst_element_link_pads(dec_.get(), pad_name, fs, "sink");
      }
      gobj::Ref<GstPad> rtp_src = gobj::adopt(gst_element_get_static_pad(dec_.get(), "rtp_src"));
      gst_pad_add_probe(rtp_src.get(), GST_PAD_PROBE_TYPE_BUFFER,
                        +[](GstPad *, GstPadProbeInfo *, gpointer h) {
                          static_cast<LeanHost *>(h)->sample_decrypted_++;
                          return GST_PAD_PROBE_OK;
                        },
                        &host_, nullptr);
    }
    gst_bin_add(GST_BIN(host_.pipeline()), bin_.get());
    gst_element_sync_state_with_parent(bin_.get());
    gobj::Ref<GstPad> dec_sink = gobj::adopt(gst_element_get_static_pad(dec_.get(), "sink"));
    in_pad_ = feeding_pad(dec_sink.get(), id + "/in", nullptr);
    gobj::Ref<GstPad> rtcp_sink = gobj::adopt(gst_element_request_pad_simple(enc_.get(), "rtcp_sink_0"));
    rtcp_pad_ = rtcp_sink ? feeding_pad(rtcp_sink.get(), id + "/rtcp", "application/x-rtcp") : nullptr;
    if (!in_pad_ || !rtcp_pad_) {
      err = "cannot link to dtlssrtpdec/dtlssrtpenc";
      return;
    }
    // RTCP RR (no report block) + SDES CNAME: enough for the relay's RTPSession.
    ssrc_ = g_random_int();
    rr_ = gobj::adopt(gst_rtcp_buffer_new(1400));
    GstRTCPBuffer rtcp = GST_RTCP_BUFFER_INIT;
    gst_rtcp_buffer_map(rr_.get(), GST_MAP_READWRITE, &rtcp);
    GstRTCPPacket p;
    gst_rtcp_buffer_add_packet(&rtcp, GST_RTCP_TYPE_RR, &p);
    gst_rtcp_packet_rr_set_ssrc(&p, ssrc_);
    gst_rtcp_buffer_add_packet(&rtcp, GST_RTCP_TYPE_SDES, &p);
    gst_rtcp_packet_sdes_add_item(&p, ssrc_);
    const std::string cname = id + "@bench";
    gst_rtcp_packet_sdes_add_entry(&p, GST_RTCP_SDES_CNAME, guint8(cname.size()),
                                   reinterpret_cast<const guint8 *>(cname.data()));
    gst_rtcp_buffer_unmap(&rtcp);
    offer = build_offer(&err);
  });
  if (!err.empty()) {
    fail(err);
    return;
  }
  http_post_sdp(endpoint_, offer, [this](HttpReply r) { on_answer(std::move(r)); });
}

std::string LeanViewer::build_offer(std::string *err) {
  NiceAgent *agent = host_.agent();
  std::string fp = fingerprint_of(dec_.get(), err);
  if (fp.empty()) return {};
  gobj::Unique<gchar> ufrag, pwd;
  if (!nice_agent_get_local_credentials(agent, stream_, gobj::out(ufrag), gobj::out(pwd))) {
    *err = "no local ICE credentials";
    return {};
  }
  GstSDPMessage *raw = nullptr;
  gst_sdp_message_new(&raw);
  gobj::Unique<GstSDPMessage> msg(raw);
  gst_sdp_message_set_version(raw, "0");
  gst_sdp_message_set_origin(raw, "-", fmt("%u", g_random_int()).c_str(), "0", "IN", "IP4", "0.0.0.0");
  gst_sdp_message_set_session_name(raw, "-");
  gst_sdp_message_add_time(raw, "0", "0", nullptr);
  gst_sdp_message_add_attribute(raw, "group", "BUNDLE 0");
  GstSDPMedia *media = nullptr;
  gst_sdp_media_new(&media);
  gst_sdp_media_set_media(media, "video");
  gst_sdp_media_set_port_info(media, 9, 1);
  gst_sdp_media_set_proto(media, "UDP/TLS/RTP/SAVPF");
  const std::string pt = std::to_string(kPayloadType);
  gst_sdp_media_add_format(media, pt.c_str());
  gst_sdp_media_add_connection(media, "IN", "IP4", "0.0.0.0", 0, 0);
  const std::vector<std::pair<const char *, std::string>> attrs = {
      {"ice-ufrag", ufrag.get()},
      {"ice-pwd", pwd.get()},
      {"fingerprint", "sha-256 " + fp},
      {"setup", "actpass"},
      {"mid", "0"},
      {"recvonly", ""},
      {"rtcp-mux", ""},
      {"rtpmap", pt + " VP8/90000"},
      {"rtcp-fb", pt + " nack"},
      {"rtcp-fb", pt + " nack pli"},
      {"rtcp-fb", pt + " ccm fir"}};
  for (auto &a : attrs) gst_sdp_media_add_attribute(media, a.first, a.second.empty() ? nullptr : a.second.c_str());
  GSList *cands = nice_agent_get_local_candidates(agent, stream_, 1);
  for (GSList *l = cands; l; l = l->next) {
    gobj::Unique<gchar> line(nice_agent_generate_local_candidate_sdp(agent, static_cast<NiceCandidate *>(l->data)));
    if (line && g_str_has_prefix(line.get(), "a=candidate:"))
      gst_sdp_media_add_attribute(media, "candidate", line.get() + strlen("a=candidate:"));
  }
  const bool any = cands != nullptr;
  g_slist_free_full(cands, reinterpret_cast<GDestroyNotify>(nice_candidate_free));
  if (!any) {
    gst_sdp_media_free(media);
    *err = "no local ICE candidate on 127.0.0.1";
    return {};
  }
  gst_sdp_media_add_attribute(media, "end-of-candidates", nullptr);
  gst_sdp_message_add_media(raw, media);  // copies
  gst_sdp_media_free(media);
  return gobj::Unique<gchar>(gst_sdp_message_as_text(raw)).get();
}

void LeanViewer::on_answer(HttpReply r) {
  {
    std::lock_guard<std::mutex> l(lock_);
    t_.post = r.t_post, t_.answer = r.t_answer;
    location_ = r.location;
  }
  if (!r.error.empty()) return fail("POST: " + r.error);
  if (r.status != 201) return fail("POST answered " + std::to_string(r.status) + ": " + r.body.substr(0, 200));
  host_.run_async([this, body = std::move(r.body)] {
    if (!stopped_) apply_answer(body);
  });
}

void LeanViewer::apply_answer(const std::string &body) {
  GstSDPMessage *raw = nullptr;
  gst_sdp_message_new_from_text(body.c_str(), &raw);
  gobj::Unique<GstSDPMessage> answer(raw);
  if (!answer || gst_sdp_message_medias_len(raw) == 0) return fail("answer: not SDP or no m-line");
  const GstSDPMedia *media = gst_sdp_message_get_media(raw, 0);  // BUNDLE: the first carries the transport
  auto attr = [&](const char *name) {
    const gchar *v = gst_sdp_media_get_attribute_val(media, name);
    return gobj::str_or(v ? v : gst_sdp_message_get_attribute_val(raw, name));
  };
  const std::string ufrag = attr("ice-ufrag"), pwd = attr("ice-pwd"), setup = attr("setup");
  if (ufrag.empty() || pwd.empty()) return fail("answer has no ICE credentials");
  if (gst_sdp_media_get_port(media) == 0 || gst_sdp_media_get_attribute_val(media, "inactive"))
    return fail("answer rejected the video m-line");
  // a=setup:active (the relay's webrtcbin) makes the relay the DTLS client.
  dtls_client_ = setup == "passive";
  NiceAgent *agent = host_.agent();
  nice_agent_set_remote_credentials(agent, stream_, ufrag.c_str(), pwd.c_str());
  GSList *cands = nullptr;
  for (guint i = 0; i < gst_sdp_media_attributes_len(media); i++) {
    const GstSDPAttribute *a = gst_sdp_media_get_attribute(media, i);
    if (g_strcmp0(a->key, "candidate") != 0 || !a->value) continue;
    const std::string line = std::string("a=candidate:") + a->value;
    NiceCandidate *c = nice_agent_parse_remote_candidate_sdp(agent, stream_, line.c_str());
    if (c && c->component_id == 1 && c->transport == NICE_CANDIDATE_TRANSPORT_UDP) cands = g_slist_append(cands, c);
    else if (c) nice_candidate_free(c);
  }
  int added = cands ? nice_agent_set_remote_candidates(agent, stream_, 1, cands) : 0;
  g_slist_free_full(cands, reinterpret_cast<GDestroyNotify>(nice_candidate_free));
  if (added <= 0) return fail("answer has no usable UDP candidate");
  // As DTLS server we must listen before the ClientHello can arrive; as
  // client we start once ICE is up (see on_ice_state).
  trace("stream %u: answer applied (POST at %.1f)", stream_, t_.post);
  if (!dtls_client_) start_dtls();
}

void LeanViewer::start_dtls() {
  if (dtls_started_ || stopped_) return;
  dtls_started_ = true;
  g_object_set(enc_.get(), "is-client", gboolean(dtls_client_), nullptr);
  gst_element_set_locked_state(sink_.get(), FALSE);
  gst_element_set_locked_state(enc_.get(), FALSE);
  gst_element_sync_state_with_parent(sink_.get());
  gst_element_sync_state_with_parent(enc_.get());
}

void LeanViewer::on_ice_state(guint state) {
  if (state == NICE_COMPONENT_STATE_FAILED) {
    fail("ICE failed");
  } else if (state == NICE_COMPONENT_STATE_CONNECTED || state == NICE_COMPONENT_STATE_READY) {
    if (!ice_up_) trace("stream %u: ICE connected", stream_);
    ice_up_ = true;
    if (dtls_client_) start_dtls();
  }
}

void LeanViewer::on_nice_packet(NiceAgent *, guint, guint, guint len, gchar *buf, gpointer self) {
  static_cast<LeanViewer *>(self)->on_packet(reinterpret_cast<guint8 *>(buf), len);
}

void LeanViewer::push_in(const guint8 *data, guint len) {
  gst_pad_push(in_pad_.get(), gst_buffer_new_memdup(data, len));
}

void LeanViewer::on_packet(const guint8 *data, guint len) {
  if (len < 1 || stopped_) return;
  if (is_dtls(data[0])) return push_in(data, len);
  if (!is_rtp_or_rtcp(data[0]) || len < 12) return;
  if (is_rtcp(data[1])) {  // the relay's SRTCP sender reports: only the sample looks at them
    if (sample_) push_in(data, len);
    return;
  }
  bytes_ += len;  // SRTP: RTP header + encrypted payload + auth tag
  packets_++;
  const guint16 seq = guint16((data[2] << 8) | data[3]);  // the RTP header is not encrypted
  bool first;
  {
    std::lock_guard<std::mutex> l(lock_);
    first = seq_.add(seq);
    if (first) t_.first_rtp = now_ms();
  }
  if (first) {
    trace("stream %u: first RTP", stream_);
    first_rtp_seen_ = true;
    settle();
    if (!sample_) host_.read_directly_later(stream_);
    // Media flows only once the relay's DTLS handshake finished: our last
    // flight arrived, so dtlsenc's send task has nothing left to do. Stop it
    // (its thread goes back to the pool); SRTCP does not pass through it.
    gobj::Ref<GstElement> dtlsenc;
    GstIterator *it = gst_bin_iterate_recurse(GST_BIN(enc_.get()));
    GValue v = G_VALUE_INIT;
    while (!dtlsenc && gst_iterator_next(it, &v) == GST_ITERATOR_OK) {
      auto *e = GST_ELEMENT(g_value_get_object(&v));
      GstElementFactory *f = gst_element_get_factory(e);
      if (f && g_strcmp0(GST_OBJECT_NAME(f), "dtlsenc") == 0) dtlsenc = gobj::ref(e);
      g_value_reset(&v);
    }
    g_value_unset(&v);
    gst_iterator_free(it);
    if (dtlsenc) {
      gobj::Ref<GstPad> src = gobj::adopt(gst_element_get_static_pad(dtlsenc.get(), "src"));
      if (src) sender_parked_ = gst_pad_set_active(src.get(), FALSE);
    }
  }
  if (sample_) {
    host_.sample_received_++;
    push_in(data, len);
  }
}

void LeanViewer::send_rtcp() {
  if (!keyed_ || stopped_ || !rtcp_pad_) return;
  gst_pad_push(rtcp_pad_.get(), gst_buffer_copy(rr_.get()));
}

void LeanViewer::stop() {
  if (stopped_.exchange(true)) return;
  std::string loc;
  {
    std::lock_guard<std::mutex> l(lock_);
    loc = location_;
  }
  if (!loc.empty()) http_delete(loc);
  settle();
  host_.run_sync([this] {
    if (direct_fd_ >= 0) host_.unwatch_direct(direct_fd_);
    direct_fd_ = -1;
    direct_socket_.reset();
    if (stream_) {
      host_.remove_viewer(stream_);
      nice_agent_attach_recv(host_.agent(), stream_, 1, g_main_context_get_thread_default(), nullptr, nullptr);
    }
    if (enc_) g_signal_handlers_disconnect_by_data(enc_.get(), this);
    if (bin_) {
      gst_element_set_state(bin_.get(), GST_STATE_NULL);
      gst_bin_remove(GST_BIN(host_.pipeline()), bin_.get());
    }
    if (in_pad_) gst_pad_set_active(in_pad_.get(), FALSE);
    if (rtcp_pad_) gst_pad_set_active(rtcp_pad_.get(), FALSE);
    // nicesink is gone: the stream (and its socket) can go.
    if (stream_) nice_agent_remove_stream(host_.agent(), stream_);
    in_pad_.reset(), rtcp_pad_.reset(), bin_.reset(), dec_.reset(), enc_.reset(), sink_.reset();
  });
}

}  // namespace bench
