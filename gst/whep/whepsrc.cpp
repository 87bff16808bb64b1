// whepsrc: WHEP client. On READY->PAUSED it offers recvonly transceivers
// (video codecs in `video-codecs` order, Opus; NACK/PLI/FIR feedback, RTX),
// POSTs the offer to whep-endpoint and applies the answer. Each incoming
// stream becomes a sometimes pad video_%u / audio_%u. What the pad carries is
// decided when it is exposed: the pad is added first (so that gst-launch and
// pad-added handlers link it), then downstream is asked for its caps; raw
// media if downstream takes raw (or is not linked), else the depayloaded,
// parsed encoded stream, so `whepsrc ! video/x-vp8 ! ...` relays without
// decoding. The session resource is DELETEd on EOS, error and PAUSED->READY.
#include "whep/whepsrc.h"

#include <gst/webrtc/webrtc.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "client-session.h"
#include "elements.h"
#include "gobj.h"
#include "ice.h"
#include "webrtc-negotiation.h"

GST_DEBUG_CATEGORY_STATIC(whepsrc_debug);
#define GST_CAT_DEFAULT whepsrc_debug

namespace {

constexpr guint kDefaultTimeout = 10;
constexpr guint kDefaultLatency = 40;
constexpr const char *kDefaultVideoCodecs = "vp8,h264,vp9";

struct Settings {
  std::string endpoint, auth_token, stun_server, turn_server, ice_addresses;
  bool use_link_headers = true;
  guint timeout = kDefaultTimeout;
  guint rtcp_timeout = 20;
  guint retry_timeout = 0;
  guint latency = kDefaultLatency;
  bool video = true, audio = true;
  std::string video_codecs = kDefaultVideoCodecs;
};

// Per codec: what we offer and how we depayload / parse / decode it.
struct Codec {
  const char *name;         // video-codecs entry
  const char *encoding;     // RTP encoding-name
  const char *offer_caps;   // transceiver codec preference
  const char *depay;
  const char *parse;        // may be null
  const char *decoders[2];  // first available wins
  const char *encoded_caps;
};

const Codec kCodecs[] = {
    {"vp8", "VP8",
     "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000,"
     "rtcp-fb-nack=true,rtcp-fb-nack-pli=true,rtcp-fb-ccm-fir=true",
     "rtpvp8depay", nullptr, {"vp8dec", nullptr}, "video/x-vp8"},
    {"h264", "H264",
     "application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000,"
     "packetization-mode=(string)1,profile-level-id=(string)42e01f,"
     "level-asymmetry-allowed=(string)1,"
     "rtcp-fb-nack=true,rtcp-fb-nack-pli=true,rtcp-fb-ccm-fir=true",
     "rtph264depay", "h264parse", {"avdec_h264", "openh264dec"}, "video/x-h264"},
    {"vp9", "VP9",
     "application/x-rtp,media=video,encoding-name=VP9,payload=98,clock-rate=90000,"
     "rtcp-fb-nack=true,rtcp-fb-nack-pli=true,rtcp-fb-ccm-fir=true",
     "rtpvp9depay", nullptr, {"vp9dec", nullptr}, "video/x-vp9"},
    {"opus", "OPUS",
     "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000,"
     "encoding-params=(string)2,minptime=(string)10,useinbandfec=(string)1",
     "rtpopusdepay", nullptr, {"opusdec", nullptr}, "audio/x-opus"},
};

const Codec *codec_by_encoding(const std::string &enc) {
  for (const auto &c : kCodecs)
    if (g_ascii_strcasecmp(c.encoding, enc.c_str()) == 0) return &c;
  return nullptr;
}

class Impl {
 public:
  explicit Impl(GstBin *self) : self_(self) {}
  GstBin *self_;
  std::mutex settings_lock;
  Settings settings;

  std::mutex lock;
  gobj::Ref<GstElement> webrtc;
  std::shared_ptr<whipwhep::ClientSession> session;
  std::vector<gobj::Ref<GstElement>> chains;
  std::vector<GstPad *> src_pads;  // owned by the element
  guint next_video = 0, next_audio = 0;
  gulong pad_added_handler = 0;

  GstElement *element() const { return GST_ELEMENT(self_); }
  Settings settings_copy() {
    std::lock_guard<std::mutex> l(settings_lock);
    return settings;
  }
  bool start();
  void stop();
  void on_pad_added(GstPad *pad);
  std::shared_ptr<whipwhep::ClientSession> current_session() {
    std::lock_guard<std::mutex> l(lock);
    return session;
  }
};

bool add_transceiver(GstElement *webrtc, const std::string &caps_text) {
  gobj::Ref<GstCaps> caps = gobj::adopt(gst_caps_from_string(caps_text.c_str()));
  if (!caps) return false;
  gobj::Ref<GstWebRTCRTPTransceiver> trans;
  g_signal_emit_by_name(webrtc, "add-transceiver", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_RECVONLY,
                        caps.get(), trans.out());
  if (!trans) return false;
  // NACK (+ RTX where the server offers it) recovers lost packets within
  // the jitterbuffer latency.
  g_object_set(trans.get(), "do-nack", TRUE, nullptr);
  return true;
}

bool Impl::start() {
  Settings s = settings_copy();
  if (!s.video && !s.audio) {
    GST_ELEMENT_ERROR(element(), RESOURCE, SETTINGS, ("Neither video nor audio requested"), (nullptr));
    return false;
  }
  std::string video_caps;
  for (const auto &name : whipwhep::split_list(s.video_codecs)) {
    const Codec *found = nullptr;
    for (const auto &c : kCodecs)
      if (g_ascii_strcasecmp(c.name, name.c_str()) == 0 && g_strcmp0(c.name, "opus") != 0) found = &c;
    if (!found) {
      GST_ELEMENT_ERROR(element(), RESOURCE, SETTINGS,
                        ("Unknown video codec '%s' in video-codecs (use vp8, h264, vp9)", name.c_str()),
                        (nullptr));
      return false;
    }
    video_caps += (video_caps.empty() ? "" : ";") + std::string(found->offer_caps);
  }
  if (s.video && video_caps.empty()) {
    GST_ELEMENT_ERROR(element(), RESOURCE, SETTINGS, ("video-codecs is empty"), (nullptr));
    return false;
  }
  GstElement *w = gst_element_factory_make("webrtcbin", "webrtcbin");
  if (!w) {
    GST_ELEMENT_ERROR(element(), CORE, MISSING_PLUGIN,
                      ("webrtcbin is missing (gstreamer1.0-plugins-bad and gstreamer1.0-nice)"), (nullptr));
    return false;
  }
  gobj::Ref<GstElement> bin = gobj::sink(w);
  gst_util_set_object_arg(G_OBJECT(w), "bundle-policy", "max-bundle");
  // Low receive latency: the jitterbuffer only waits this long for a
  // retransmission, never adds it to in-order packets.
  g_object_set(w, "latency", s.latency, nullptr);
  whipwhep::nack_only_gaps(w);
  whipwhep::ClientConfig cfg;
  cfg.protocol = "WHEP";
  cfg.endpoint = s.endpoint;
  cfg.auth_token = s.auth_token;
  cfg.stun_server = s.stun_server;
  cfg.turn_server = s.turn_server;
  cfg.ice_addresses = s.ice_addresses;
  cfg.use_link_headers = s.use_link_headers;
  cfg.timeout_s = s.timeout;
  cfg.rtcp_timeout_s = s.rtcp_timeout;
  cfg.retry_timeout_s = s.retry_timeout;
  std::string error;
  auto sess = whipwhep::ClientSession::create(element(), w, cfg, &error);
  if (!sess) {
    GST_ELEMENT_ERROR(element(), RESOURCE, SETTINGS, ("%s", error.c_str()), (nullptr));
    return false;
  }
  if ((s.video && !add_transceiver(w, video_caps)) ||
      (s.audio && !add_transceiver(w, kCodecs[3].offer_caps))) {
    GST_ELEMENT_ERROR(element(), CORE, NEGOTIATION, ("webrtcbin refused a recvonly transceiver"), (nullptr));
    return false;
  }
  gulong handler = g_signal_connect(w, "pad-added", G_CALLBACK(+[](GstElement *, GstPad *pad, gpointer data) {
                                      static_cast<Impl *>(data)->on_pad_added(pad);
                                    }),
                                    this);
  gst_bin_add(self_, w);
  std::lock_guard<std::mutex> l(lock);
  webrtc = bin;
  session = sess;
  pad_added_handler = handler;
  return true;
}

void Impl::stop() {
  gobj::Ref<GstElement> bin;
  std::vector<gobj::Ref<GstElement>> old_chains;
  std::vector<GstPad *> pads;
  {
    std::lock_guard<std::mutex> l(lock);
    bin = std::move(webrtc);
    webrtc = nullptr;
    session.reset();
    old_chains.swap(chains);
    pads.swap(src_pads);
    next_video = next_audio = 0;
  }
  if (bin) {
    g_signal_handlers_disconnect_by_data(bin.get(), this);
    gst_element_set_state(bin.get(), GST_STATE_NULL);
    gst_bin_remove(self_, bin.get());
  }
  for (auto &e : old_chains) {
    gst_element_set_state(e.get(), GST_STATE_NULL);
    gst_bin_remove(self_, e.get());
  }
  for (GstPad *p : pads) gst_element_remove_pad(element(), p);
}

void Impl::on_pad_added(GstPad *pad) {
  if (GST_PAD_DIRECTION(pad) != GST_PAD_SRC) return;
  gobj::Ref<GstCaps> caps = gobj::adopt(gst_pad_get_current_caps(pad));
  if (!caps) caps = gobj::adopt(gst_pad_query_caps(pad, nullptr));
  const GstStructure *st = gst_caps_get_structure(caps.get(), 0);
  std::string enc = gobj::str_or(gst_structure_get_string(st, "encoding-name"));
  const Codec *codec = codec_by_encoding(enc);
  if (!codec) {
    GST_ELEMENT_ERROR(element(), STREAM, CODEC_NOT_FOUND,
                      ("The WHEP server sends %s, which whepsrc cannot depayload", enc.c_str()), (nullptr));
    return;
  }
  const bool video = g_strcmp0(codec->name, "opus") != 0;
  std::string name;
  {
    std::lock_guard<std::mutex> l(lock);
    name = video ? "video_" + std::to_string(next_video++) : "audio_" + std::to_string(next_audio++);
  }
  GstPadTemplate *templ = gst_element_class_get_pad_template(GST_ELEMENT_GET_CLASS(element()),
                                                              video ? "video_%u" : "audio_%u");
  GstPad *ghost = gst_ghost_pad_new_no_target_from_template(name.c_str(), templ);
  gst_pad_set_active(ghost, TRUE);
  // EOS downstream (e.g. the server ended the stream) ends the session.
  gst_pad_add_probe(
      ghost, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM,
      +[](GstPad *, GstPadProbeInfo *info, gpointer data) -> GstPadProbeReturn {
        if (GST_EVENT_TYPE(GST_PAD_PROBE_INFO_EVENT(info)) == GST_EVENT_EOS)
          if (auto s = static_cast<Impl *>(data)->current_session()) s->end_async();
        return GST_PAD_PROBE_OK;
      },
      this, nullptr);
  // A pad nobody linked (e.g. gst-launch linking only the video pad) drops
  // its buffers instead of failing the whole session with not-linked.
  gst_pad_add_probe(
      ghost, GstPadProbeType(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST),
      +[](GstPad *pad, GstPadProbeInfo *, gpointer) -> GstPadProbeReturn {
        return gst_pad_is_linked(pad) ? GST_PAD_PROBE_OK : GST_PAD_PROBE_DROP;
      },
      nullptr, nullptr);
  // Expose first: whoever handles pad-added links it now, then we can ask
  // downstream what it accepts.
  gst_element_add_pad(element(), ghost);
  bool decode = true;
  gobj::Ref<GstPad> peer = gobj::adopt(gst_pad_get_peer(ghost));
  if (peer) {
    gobj::Ref<GstCaps> want = gobj::adopt(gst_pad_query_caps(peer.get(), nullptr));
    gobj::Ref<GstCaps> raw = gobj::adopt(gst_caps_from_string(video ? "video/x-raw" : "audio/x-raw"));
    gobj::Ref<GstCaps> encoded = gobj::adopt(gst_caps_from_string(codec->encoded_caps));
    if (want && !gst_caps_can_intersect(want.get(), raw.get()) &&
        gst_caps_can_intersect(want.get(), encoded.get()))
      decode = false;
  }
  std::vector<const char *> factories = {codec->depay};
  if (codec->parse) factories.push_back(codec->parse);
  if (decode) {
    const char *dec = nullptr;
    for (const char *d : codec->decoders) {
      if (!d) continue;
      gobj::Ref<GstElementFactory> f = gobj::adopt(gst_element_factory_find(d));
      if (f) {
        dec = d;
        break;
      }
    }
    if (!dec) {
      GST_ELEMENT_ERROR(element(), CORE, MISSING_PLUGIN, ("No decoder for %s is installed", enc.c_str()),
                        (nullptr));
      return;
    }
    factories.push_back(dec);
  }
  std::vector<gobj::Ref<GstElement>> els;
  for (const char *f : factories) {
    GstElement *e = gst_element_factory_make(f, nullptr);
    if (!e) {
      GST_ELEMENT_ERROR(element(), CORE, MISSING_PLUGIN, ("Element %s is missing", f), (nullptr));
      return;
    }
    els.push_back(gobj::sink(e));
    gst_bin_add(self_, e);
    if (els.size() > 1) gst_element_link(els[els.size() - 2].get(), e);
  }
  for (auto it = els.rbegin(); it != els.rend(); ++it) gst_element_sync_state_with_parent(it->get());
  gobj::Ref<GstPad> last = gobj::adopt(gst_element_get_static_pad(els.back().get(), "src"));
  gst_ghost_pad_set_target(GST_GHOST_PAD(ghost), last.get());
  gobj::Ref<GstPad> first = gobj::adopt(gst_element_get_static_pad(els.front().get(), "sink"));
  if (gst_pad_link(pad, first.get()) != GST_PAD_LINK_OK)
    GST_ELEMENT_ERROR(element(), CORE, NEGOTIATION, ("Cannot link the %s stream", enc.c_str()), (nullptr));
  GST_INFO_OBJECT(self_, "pad %s: %s, %s", name.c_str(), enc.c_str(), decode ? "decoded" : "encoded");
  std::lock_guard<std::mutex> l(lock);
  for (auto &e : els) chains.push_back(e);
  src_pads.push_back(ghost);
}

}  // namespace

// ---- GObject glue ----------------------------------------------------------

struct _GstWhipwhepWhepSrc {
  GstBin parent;
  Impl *impl;
};

enum {
  PROP_0,
  PROP_WHEP_ENDPOINT,
  PROP_AUTH_TOKEN,
  PROP_STUN_SERVER,
  PROP_TURN_SERVER,
  PROP_USE_LINK_HEADERS,
  PROP_TIMEOUT,
  PROP_RTCP_TIMEOUT,
  PROP_RETRY_TIMEOUT,
  PROP_ICE_ADDRESSES,
  PROP_LATENCY,
  PROP_VIDEO,
  PROP_AUDIO,
  PROP_VIDEO_CODECS,
  PROP_RESOURCE_URL,
  N_PROPS
};
static GParamSpec *props[N_PROPS];

G_DEFINE_TYPE_WITH_CODE(GstWhipwhepWhepSrc, gst_whipwhep_whep_src, GST_TYPE_BIN,
                        GST_DEBUG_CATEGORY_INIT(whepsrc_debug, "whepsrc", 0, "WHEP client source"))
GST_ELEMENT_REGISTER_DEFINE(whepsrc, "whepsrc", GST_RANK_NONE, GST_TYPE_WHIPWHEP_WHEP_SRC)

static GstStaticPadTemplate video_template = GST_STATIC_PAD_TEMPLATE(
    "video_%u", GST_PAD_SRC, GST_PAD_SOMETIMES,
    GST_STATIC_CAPS("video/x-raw; video/x-vp8; video/x-vp9; video/x-h264"));
static GstStaticPadTemplate audio_template =
    GST_STATIC_PAD_TEMPLATE("audio_%u", GST_PAD_SRC, GST_PAD_SOMETIMES, GST_STATIC_CAPS("audio/x-raw; audio/x-opus"));

static void set_property(GObject *object, guint id, const GValue *value, GParamSpec *pspec) {
  Impl *impl = GST_WHIPWHEP_WHEP_SRC(object)->impl;
  std::lock_guard<std::mutex> l(impl->settings_lock);
  Settings &s = impl->settings;
  switch (id) {
    case PROP_WHEP_ENDPOINT: s.endpoint = gobj::str_or(g_value_get_string(value)); break;
    case PROP_AUTH_TOKEN: s.auth_token = gobj::str_or(g_value_get_string(value)); break;
    case PROP_STUN_SERVER: s.stun_server = gobj::str_or(g_value_get_string(value)); break;
    case PROP_TURN_SERVER: s.turn_server = gobj::str_or(g_value_get_string(value)); break;
    case PROP_USE_LINK_HEADERS: s.use_link_headers = g_value_get_boolean(value); break;
    case PROP_TIMEOUT: s.timeout = g_value_get_uint(value); break;
    case PROP_RTCP_TIMEOUT: s.rtcp_timeout = g_value_get_uint(value); break;
    case PROP_RETRY_TIMEOUT: s.retry_timeout = g_value_get_uint(value); break;
    case PROP_ICE_ADDRESSES: s.ice_addresses = gobj::str_or(g_value_get_string(value)); break;
    case PROP_LATENCY: s.latency = g_value_get_uint(value); break;
    case PROP_VIDEO: s.video = g_value_get_boolean(value); break;
    case PROP_AUDIO: s.audio = g_value_get_boolean(value); break;
    case PROP_VIDEO_CODECS: s.video_codecs = gobj::str_or(g_value_get_string(value), kDefaultVideoCodecs); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

static void get_property(GObject *object, guint id, GValue *value, GParamSpec *pspec) {
  Impl *impl = GST_WHIPWHEP_WHEP_SRC(object)->impl;
  if (id == PROP_RESOURCE_URL) {
    auto s = impl->current_session();
    g_value_set_string(value, s ? s->resource_url().c_str() : "");
    return;
  }
  std::lock_guard<std::mutex> l(impl->settings_lock);
  Settings &s = impl->settings;
  switch (id) {
    case PROP_WHEP_ENDPOINT: g_value_set_string(value, s.endpoint.c_str()); break;
    case PROP_AUTH_TOKEN: g_value_set_string(value, s.auth_token.c_str()); break;
    case PROP_STUN_SERVER: g_value_set_string(value, s.stun_server.c_str()); break;
    case PROP_TURN_SERVER: g_value_set_string(value, s.turn_server.c_str()); break;
    case PROP_USE_LINK_HEADERS: g_value_set_boolean(value, s.use_link_headers); break;
    case PROP_TIMEOUT: g_value_set_uint(value, s.timeout); break;
    case PROP_RTCP_TIMEOUT: g_value_set_uint(value, s.rtcp_timeout); break;
    case PROP_RETRY_TIMEOUT: g_value_set_uint(value, s.retry_timeout); break;
    case PROP_ICE_ADDRESSES: g_value_set_string(value, s.ice_addresses.c_str()); break;
    case PROP_LATENCY: g_value_set_uint(value, s.latency); break;
    case PROP_VIDEO: g_value_set_boolean(value, s.video); break;
    case PROP_AUDIO: g_value_set_boolean(value, s.audio); break;
    case PROP_VIDEO_CODECS: g_value_set_string(value, s.video_codecs.c_str()); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

static GstStateChangeReturn change_state(GstElement *element, GstStateChange transition) {
  Impl *impl = GST_WHIPWHEP_WHEP_SRC(element)->impl;
  switch (transition) {
    case GST_STATE_CHANGE_NULL_TO_READY:
      if (!impl->start()) return GST_STATE_CHANGE_FAILURE;
      break;
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      // DELETE now, bounded by `timeout`: the process may exit right after.
      if (auto s = impl->current_session()) s->end_sync();
      break;
    default: break;
  }
  GstStateChangeReturn ret = GST_ELEMENT_CLASS(gst_whipwhep_whep_src_parent_class)->change_state(element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE) return ret;
  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      if (auto s = impl->current_session()) s->negotiate();
      ret = GST_STATE_CHANGE_NO_PREROLL;  // a live source
      break;
    case GST_STATE_CHANGE_PLAYING_TO_PAUSED: ret = GST_STATE_CHANGE_NO_PREROLL; break;
    case GST_STATE_CHANGE_READY_TO_NULL: impl->stop(); break;
    default: break;
  }
  return ret;
}

static void handle_message(GstBin *bin, GstMessage *msg) {
  if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR)
    if (auto s = GST_WHIPWHEP_WHEP_SRC(bin)->impl->current_session()) s->end_async();
  GST_BIN_CLASS(gst_whipwhep_whep_src_parent_class)->handle_message(bin, msg);
}

static void finalize(GObject *object) {
  delete GST_WHIPWHEP_WHEP_SRC(object)->impl;
  G_OBJECT_CLASS(gst_whipwhep_whep_src_parent_class)->finalize(object);
}

static void gst_whipwhep_whep_src_init(GstWhipwhepWhepSrc *self) {
  self->impl = new Impl(GST_BIN(self));
  GST_OBJECT_FLAG_SET(self, GST_ELEMENT_FLAG_SOURCE);
}

static void gst_whipwhep_whep_src_class_init(GstWhipwhepWhepSrcClass *klass) {
  GObjectClass *gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS(klass);
  gobject_class->set_property = set_property;
  gobject_class->get_property = get_property;
  gobject_class->finalize = finalize;
  element_class->change_state = change_state;
  GST_BIN_CLASS(klass)->handle_message = handle_message;

  constexpr auto rw = GParamFlags(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  props[PROP_WHEP_ENDPOINT] = g_param_spec_string(
      "whep-endpoint", "WHEP endpoint", "URL of the WHEP endpoint the offer is POSTed to (http or https)",
      nullptr, rw);
  props[PROP_AUTH_TOKEN] = g_param_spec_string(
      "auth-token", "Authorization token",
      "Bearer token sent as 'Authorization: Bearer <token>' on every WHEP request; empty = none", nullptr, rw);
  props[PROP_STUN_SERVER] = g_param_spec_string(
      "stun-server", "STUN server", "STUN server as stun://host:port; empty = none", nullptr, rw);
  props[PROP_TURN_SERVER] = g_param_spec_string(
      "turn-server", "TURN server", "TURN server as turn(s)://user:password@host:port; empty = none", nullptr, rw);
  props[PROP_USE_LINK_HEADERS] = g_param_spec_boolean(
      "use-link-headers", "Use Link headers",
      "Apply the ICE servers listed in 'Link: <...>; rel=\"ice-server\"' headers of the 201. whepsrc "
      "gathers before it POSTs, so they serve later ICE restarts, not the first connection",
      TRUE, rw);
  props[PROP_TIMEOUT] = g_param_spec_uint(
      "timeout", "Timeout",
      "Seconds each HTTP request (redirects included) and the WebRTC connection may take before the "
      "element fails with an error",
      1, 3600, kDefaultTimeout, rw);
  props[PROP_RTCP_TIMEOUT] = g_param_spec_uint(
      "rtcp-timeout", "RTCP timeout",
      "Seconds without RTCP from the server, once connected, before the element fails with an "
      "error (the server ended the session or is gone); 0 = never",
      0, 3600, 20, rw);
  props[PROP_RETRY_TIMEOUT] = whipwhep::retry_timeout_param_spec(
      "a WHEP stream that is not live yet");
  props[PROP_ICE_ADDRESSES] = g_param_spec_string(
      "ice-addresses", "ICE addresses",
      "Comma-separated local IP addresses ICE may gather candidates on; empty = every interface except loopback",
      nullptr, rw);
  props[PROP_LATENCY] = g_param_spec_uint(
      "latency", "Latency",
      "Receive jitterbuffer latency in ms: how long a gap may wait for a retransmission (in-order "
      "packets are not delayed)",
      0, 10000, kDefaultLatency, rw);
  props[PROP_VIDEO] = g_param_spec_boolean("video", "Video", "Ask the server for video", TRUE, rw);
  props[PROP_AUDIO] = g_param_spec_boolean("audio", "Audio", "Ask the server for audio (Opus)", TRUE, rw);
  props[PROP_VIDEO_CODECS] = g_param_spec_string(
      "video-codecs", "Video codecs",
      "Comma-separated video codecs offered, most preferred first, from vp8, h264, vp9",
      kDefaultVideoCodecs, rw);
  props[PROP_RESOURCE_URL] = g_param_spec_string(
      "resource-url", "Resource URL",
      "URL of the WHEP session resource (the 201's Location, resolved); empty when no session", nullptr,
      GParamFlags(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_properties(gobject_class, N_PROPS, props);

  gst_element_class_add_static_pad_template(element_class, &video_template);
  gst_element_class_add_static_pad_template(element_class, &audio_template);
  gst_element_class_set_static_metadata(
      element_class, "WHEP client source", "Source/Network/WebRTC",
      "Plays a WHEP endpoint: decoded audio/video, or encoded streams when downstream asks for them",
      "whipwhep");
}
