// whipsink: WHIP client. Request pads video_%u / audio_%u take raw media
// (encoded inside with real-time settings), encoded media (parsed and
// payloaded, never re-encoded) or RTP (straight into webrtcbin). When the
// element is PLAYING and every requested pad has caps, one sendonly offer is
// made (after ICE gathering), POSTed to whip-endpoint, and the answer
// applied. The session resource is DELETEd on EOS, on error and on
// PAUSED->READY (synchronously, bounded by `timeout`).
#include "whip/whipsink.h"

#include <gst/webrtc/webrtc.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "client-session.h"
#include "elements.h"
#include "gobj.h"

GST_DEBUG_CATEGORY_STATIC(whipsink_debug);
#define GST_CAT_DEFAULT whipsink_debug

namespace {

constexpr guint kDefaultTimeout = 10;
constexpr guint kDefaultLatency = 40;
constexpr guint kDefaultVideoBitrate = 1500;  // kbit/s
constexpr const char *kDefaultVideoCodec = "vp8";
constexpr guint kKeyframeInterval = 60;  // frames: a keyframe every 2 s at 30 fps

struct Settings {
  std::string endpoint, auth_token, stun_server, turn_server, ice_addresses;
  bool use_link_headers = true;
  guint timeout = kDefaultTimeout;
  guint rtcp_timeout = 20;
  guint retry_timeout = 0;
  guint latency = kDefaultLatency;
  guint video_bitrate = kDefaultVideoBitrate;
  std::string video_codec = kDefaultVideoCodec;
};

class Impl;

struct Input {
  Impl *impl = nullptr;
  std::string name;
  guint index = 0;  // per kind; picks the payload type
  bool video = true;
  GstPad *ghost = nullptr;                // owned by the element
  gobj::Ref<GstElement> filter;           // capsfilter behind the ghost pad
  std::vector<gobj::Ref<GstElement>> chain;  // built on caps, removed on stop
  gobj::Ref<GstPad> webrtc_pad;           // requested sink_%u of webrtcbin
  bool ready = false;                     // caps reached webrtcbin
  bool eos = false;
  bool encoder = false;                   // an encoder was created for it
};

class Impl {
 public:
  explicit Impl(GstBin *self) : self_(self) {}

  GstBin *self_;
  std::mutex settings_lock;
  Settings settings;

  std::mutex lock;  // inputs, webrtc, session, playing
  std::vector<std::unique_ptr<Input>> inputs;
  guint next_video = 0, next_audio = 0;
  gobj::Ref<GstElement> webrtc;
  std::shared_ptr<whipwhep::ClientSession> session;
  bool playing = false;

  GstElement *element() const { return GST_ELEMENT(self_); }

  Settings settings_copy() {
    std::lock_guard<std::mutex> l(settings_lock);
    return settings;
  }

  bool start();
  void stop();
  void maybe_offer();
  bool build_chain(Input *in, GstCaps *caps);
  void on_webrtc_caps(Input *in);
  GstPad *request_pad(GstPadTemplate *templ, const gchar *name);
  void release_pad(GstPad *pad);
  void on_eos(Input *in);
};

GstElement *make(const char *factory, const std::string &name = {}) {
  GstElement *e = gst_element_factory_make(factory, name.empty() ? nullptr : name.c_str());
  return e;
}

// The encoder for raw video, with settings for live, low-latency sending.
GstElement *make_video_encoder(const Settings &s, std::string *caps_after) {
  if (s.video_codec == "h264") {
    if (GstElement *x264 = make("x264enc")) {
      gst_util_set_object_arg(G_OBJECT(x264), "tune", "zerolatency");
      gst_util_set_object_arg(G_OBJECT(x264), "speed-preset", "ultrafast");
      g_object_set(x264, "key-int-max", kKeyframeInterval, "bitrate", s.video_bitrate, nullptr);
      *caps_after = "video/x-h264,profile=constrained-baseline";
      return x264;
    }
    if (GstElement *oh = make("openh264enc")) {
      gst_util_set_object_arg(G_OBJECT(oh), "complexity", "low");
      gst_util_set_object_arg(G_OBJECT(oh), "rate-control", "bitrate");
      g_object_set(oh, "bitrate", s.video_bitrate * 1000, "gop-size", kKeyframeInterval, nullptr);
      *caps_after = "video/x-h264,profile=constrained-baseline";
      return oh;
    }
    return nullptr;
  }
  GstElement *vp8 = make("vp8enc");
  if (!vp8) return nullptr;
  // deadline=1: realtime; cpu-used high: fast; lag 0: no frame delay;
  // error-resilient partitions: decodable despite loss.
  g_object_set(vp8, "deadline", G_GINT64_CONSTANT(1), "cpu-used", 8, "lag-in-frames", 0,
               "keyframe-max-dist", kKeyframeInterval, "target-bitrate", s.video_bitrate * 1000,
               "threads", 2, nullptr);
  gst_util_set_object_arg(G_OBJECT(vp8), "error-resilient", "default");
  gst_util_set_object_arg(G_OBJECT(vp8), "end-usage", "cbr");
  return vp8;
}

bool Impl::build_chain(Input *in, GstCaps *caps) {
  const GstStructure *st = gst_caps_get_structure(caps, 0);
  const std::string media = gst_structure_get_name(st);
  Settings s = settings_copy();
  gobj::Ref<GstElement> bin;
  {
    std::lock_guard<std::mutex> l(lock);
    bin = webrtc;
  }
  if (!bin) return false;

  std::vector<gobj::Ref<GstElement>> els;
  auto add = [&](const char *factory) -> GstElement * {
    GstElement *e = gst_element_factory_make(factory, nullptr);
    els.push_back(gobj::sink(e));
    return e;
  };
  std::string enc = media;
  bool encoder = false;
  if (media == "video/x-raw") {
    add("videoconvert");
    std::string caps_after;
    els.push_back(gobj::sink(make_video_encoder(s, &caps_after)));
    if (!caps_after.empty()) {
      GstElement *cf = add("capsfilter");
      gobj::Ref<GstCaps> c = gobj::adopt(gst_caps_from_string(caps_after.c_str()));
      if (cf) g_object_set(cf, "caps", c.get(), nullptr);
    }
    enc = s.video_codec == "h264" ? "video/x-h264" : "video/x-vp8";
    encoder = true;
  } else if (media == "audio/x-raw") {
    add("audioconvert");
    add("audioresample");
    if (GstElement *opus = add("opusenc")) g_object_set(opus, "bitrate", 64000, nullptr);
    enc = "audio/x-opus";
    encoder = true;
  }
  if (enc == "video/x-h264") {
    // SPS/PPS before every IDR access unit: a receiver joining late (or
    // after loss) can start decoding at the next keyframe. h264parse does it
    // per access unit; rtph264pay's own config-interval would insert them
    // before every IDR *slice* (GStreamer 1.22), which splits a multi-slice
    // keyframe (x264's sliced threads) in two and decoders lose its top.
    if (GstElement *parse = add("h264parse")) g_object_set(parse, "config-interval", -1, nullptr);
    if (GstElement *pay = add("rtph264pay"))
      gst_util_set_object_arg(G_OBJECT(pay), "aggregate-mode", "zero-latency");
  } else if (enc == "video/x-vp8" || enc == "video/x-vp9") {
    if (GstElement *pay = add(enc == "video/x-vp8" ? "rtpvp8pay" : "rtpvp9pay"))
      gst_util_set_object_arg(G_OBJECT(pay), "picture-id-mode", "15-bit");
  } else if (enc == "audio/x-opus") {
    add("rtpopuspay");
  } else if (enc != "application/x-rtp") {
    GST_ELEMENT_ERROR(element(), STREAM, FORMAT,
                      ("Pad %s: unsupported media type %s", in->name.c_str(), enc.c_str()), (nullptr));
    return false;
  }
  for (auto &e : els) {
    if (!e) {
      GST_ELEMENT_ERROR(element(), CORE, MISSING_PLUGIN,
                        ("Pad %s: a GStreamer element needed to send %s is missing (encoder, "
                         "parser or payloader)",
                         in->name.c_str(), enc.c_str()),
                        (nullptr));
      return false;
    }
  }
  if (!els.empty()) {
    // Distinct payload types per input: bundled streams share one transport.
    g_object_set(els.back().get(), "pt", in->video ? 96 + 2 * in->index : 111 + in->index, nullptr);
  }

  gobj::Ref<GstPad> sinkpad = gobj::adopt(gst_element_request_pad_simple(bin.get(), "sink_%u"));
  if (!sinkpad) {
    GST_ELEMENT_ERROR(element(), CORE, NEGOTIATION, ("webrtcbin refused a new stream"), (nullptr));
    return false;
  }
  gobj::Ref<GstWebRTCRTPTransceiver> trans;
  g_object_get(sinkpad.get(), "transceiver", trans.out(), nullptr);
  if (trans) {
    g_object_set(trans.get(), "direction", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDONLY, nullptr);
    // NACK + RTX lets the server recover lost video packets.
    if (in->video) g_object_set(trans.get(), "do-nack", TRUE, nullptr);
  }
  GstElement *prev = in->filter.get();
  for (auto &e : els) {
    gst_bin_add(self_, e.get());
    if (!gst_element_link(prev, e.get())) {
      GST_ELEMENT_ERROR(element(), CORE, NEGOTIATION,
                        ("Pad %s: cannot link %s", in->name.c_str(), GST_ELEMENT_NAME(e.get())),
                        (nullptr));
      return false;
    }
    prev = e.get();
  }
  gobj::Ref<GstPad> src = gobj::adopt(gst_element_get_static_pad(prev, "src"));
  // The first buffer leaving for webrtcbin means its caps event has been
  // fully handled by webrtcbin's pad (a caps-event probe fires before that,
  // and an offer made then fails for unfixed caps): now the input can be
  // described in the offer.
  gst_pad_add_probe(
      src.get(), GstPadProbeType(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST),
      +[](GstPad *pad, GstPadProbeInfo *, gpointer data) -> GstPadProbeReturn {
        auto *in = static_cast<Input *>(data);
        // Pin the offer to these caps (codec-preferences): webrtcbin
        // otherwise sometimes builds the m-line from unfixed template caps.
        gobj::Ref<GstCaps> caps = gobj::adopt(gst_pad_get_current_caps(pad));
        gobj::Ref<GstPad> peer = gobj::adopt(gst_pad_get_peer(pad));
        if (caps && peer) {
          caps = gobj::adopt(gst_caps_make_writable(caps.release()));
          gst_structure_remove_fields(gst_caps_get_structure(caps.get(), 0), "ssrc", "seqnum-offset",
                                      "timestamp-offset", nullptr);
          gobj::Ref<GstWebRTCRTPTransceiver> t;
          g_object_get(peer.get(), "transceiver", t.out(), nullptr);
          if (t) g_object_set(t.get(), "codec-preferences", caps.get(), nullptr);
        }
        in->impl->on_webrtc_caps(in);
        return GST_PAD_PROBE_REMOVE;
      },
      in, nullptr);
  if (gst_pad_link(src.get(), sinkpad.get()) != GST_PAD_LINK_OK) {
    GST_ELEMENT_ERROR(element(), CORE, NEGOTIATION,
                      ("Pad %s: cannot link its %s stream to webrtcbin", in->name.c_str(), enc.c_str()),
                      (nullptr));
    return false;
  }
  for (auto it = els.rbegin(); it != els.rend(); ++it) gst_element_sync_state_with_parent(it->get());
  {
    std::lock_guard<std::mutex> l(lock);
    in->chain = std::move(els);
    in->webrtc_pad = sinkpad;
    in->encoder = encoder;
  }
  GST_INFO_OBJECT(self_, "pad %s: %s sent as %s%s", in->name.c_str(), media.c_str(), enc.c_str(),
                  encoder ? " (encoded here)" : "");
  return true;
}

void Impl::on_webrtc_caps(Input *in) {
  {
    std::lock_guard<std::mutex> l(lock);
    in->ready = true;
  }
  maybe_offer();
}

void Impl::maybe_offer() {
  std::shared_ptr<whipwhep::ClientSession> s;
  {
    std::lock_guard<std::mutex> l(lock);
    if (!playing || !session || inputs.empty()) return;
    for (auto &i : inputs)
      if (!i->ready) return;
    s = session;
  }
  // Every input is described: one offer covering all of them.
  s->negotiate();
}

void Impl::on_eos(Input *in) {
  std::shared_ptr<whipwhep::ClientSession> s;
  {
    std::lock_guard<std::mutex> l(lock);
    in->eos = true;
    for (auto &i : inputs)
      if (!i->eos) return;
    s = session;
  }
  // The stream is over: end the WHIP session now, not at NULL, and post EOS
  // once the DELETE went out. webrtcbin's network sinks never see the EOS
  // (its internal funnel stops at the session's end), so without our own
  // EOS message `gst-launch-1.0 -e` would wait forever.
  GWeakRef *weak = g_new0(GWeakRef, 1);
  g_weak_ref_init(weak, self_);
  auto post_eos = [weak]() {
    gobj::Ref<GstElement> self = gobj::adopt(static_cast<GstElement *>(g_weak_ref_get(weak)));
    g_weak_ref_clear(weak);
    g_free(weak);
    if (self) gst_element_post_message(self.get(), gst_message_new_eos(GST_OBJECT(self.get())));
  };
  if (s)
    s->end_async(post_eos);
  else
    post_eos();
}

GstPad *Impl::request_pad(GstPadTemplate *templ, const gchar *req_name) {
  auto in = std::make_unique<Input>();
  in->impl = this;
  in->video = g_str_has_prefix(GST_PAD_TEMPLATE_NAME_TEMPLATE(templ), "video");
  {
    std::lock_guard<std::mutex> l(lock);
    if (playing && session && session->resource_url() != "") {
      GST_WARNING_OBJECT(self_, "cannot add a stream to a running WHIP session");
      return nullptr;
    }
    guint &counter = in->video ? next_video : next_audio;
    in->index = counter++;
  }
  in->name = req_name ? req_name : (std::string(in->video ? "video_" : "audio_") + std::to_string(in->index));
  GstElement *filter = gst_element_factory_make("capsfilter", ("in_" + in->name).c_str());
  // The template caps: upstream negotiates within what we can send.
  g_object_set(filter, "caps", GST_PAD_TEMPLATE_CAPS(templ), nullptr);
  in->filter = gobj::sink(filter);
  gst_bin_add(self_, filter);
  gst_element_sync_state_with_parent(filter);

  gobj::Ref<GstPad> target = gobj::adopt(gst_element_get_static_pad(filter, "sink"));
  // Build the chain when caps arrive, in the streaming thread, before the
  // caps event goes on through the capsfilter.
  gst_pad_add_probe(
      target.get(), GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM,
      +[](GstPad *, GstPadProbeInfo *info, gpointer data) -> GstPadProbeReturn {
        auto *in = static_cast<Input *>(data);
        GstEvent *ev = GST_PAD_PROBE_INFO_EVENT(info);
        if (GST_EVENT_TYPE(ev) == GST_EVENT_CAPS) {
          bool built;
          {
            std::lock_guard<std::mutex> l(in->impl->lock);
            built = !in->chain.empty() || in->webrtc_pad;
          }
          if (!built) {
            GstCaps *caps = nullptr;
            gst_event_parse_caps(ev, &caps);
            if (!in->impl->build_chain(in, caps)) return GST_PAD_PROBE_DROP;
          }
        } else if (GST_EVENT_TYPE(ev) == GST_EVENT_EOS) {
          in->impl->on_eos(in);
        }
        return GST_PAD_PROBE_OK;
      },
      in.get(), nullptr);
  GstPad *ghost = gst_ghost_pad_new_from_template(in->name.c_str(), target.get(), templ);
  in->ghost = ghost;
  gst_pad_set_active(ghost, TRUE);
  {
    std::lock_guard<std::mutex> l(lock);
    inputs.push_back(std::move(in));
  }
  gst_element_add_pad(element(), ghost);
  return ghost;
}

void Impl::release_pad(GstPad *pad) {
  std::unique_ptr<Input> in;
  {
    std::lock_guard<std::mutex> l(lock);
    for (auto it = inputs.begin(); it != inputs.end(); ++it) {
      if ((*it)->ghost == pad) {
        in = std::move(*it);
        inputs.erase(it);
        break;
      }
    }
  }
  if (!in) return;
  gst_element_remove_pad(element(), pad);
  for (auto &e : in->chain) {
    gst_element_set_state(e.get(), GST_STATE_NULL);
    gst_bin_remove(self_, e.get());
  }
  if (in->webrtc_pad && webrtc) gst_element_release_request_pad(webrtc.get(), in->webrtc_pad.get());
  gst_element_set_state(in->filter.get(), GST_STATE_NULL);
  gst_bin_remove(self_, in->filter.get());
}

// NULL->READY: a fresh webrtcbin configured for this run (ICE addresses are
// added to its agent, which cannot be undone, so it is not reused).
bool Impl::start() {
  Settings s = settings_copy();
  GstElement *w = gst_element_factory_make("webrtcbin", "webrtcbin");
  if (!w) {
    GST_ELEMENT_ERROR(element(), CORE, MISSING_PLUGIN,
                      ("webrtcbin is missing (gstreamer1.0-plugins-bad and gstreamer1.0-nice)"), (nullptr));
    return false;
  }
  gobj::Ref<GstElement> bin = gobj::sink(w);
  gst_util_set_object_arg(G_OBJECT(w), "bundle-policy", "max-bundle");
  g_object_set(w, "latency", s.latency, nullptr);
  whipwhep::ClientConfig cfg;
  cfg.protocol = "WHIP";
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
  gst_bin_add(self_, w);
  std::lock_guard<std::mutex> l(lock);
  webrtc = bin;
  session = sess;
  return true;
}

// READY->NULL: drop webrtcbin and every chain; pads stay (and are rebuilt
// from the next caps event).
void Impl::stop() {
  gobj::Ref<GstElement> bin;
  std::vector<gobj::Ref<GstElement>> chain_elements;
  {
    std::lock_guard<std::mutex> l(lock);
    bin = std::move(webrtc);
    webrtc = nullptr;
    session.reset();
    for (auto &i : inputs) {
      for (auto &e : i->chain) chain_elements.push_back(e);
      i->chain.clear();
      i->webrtc_pad = nullptr;
      i->ready = false;
      i->eos = false;
    }
  }
  for (auto &e : chain_elements) {
    gst_element_set_state(e.get(), GST_STATE_NULL);
    gst_bin_remove(self_, e.get());
  }
  if (bin) {
    gst_element_set_state(bin.get(), GST_STATE_NULL);
    gst_bin_remove(self_, bin.get());
  }
}

}  // namespace

// ---- GObject glue ----------------------------------------------------------

struct _GstWhipwhepWhipSink {
  GstBin parent;
  Impl *impl;
};

enum {
  PROP_0,
  PROP_WHIP_ENDPOINT,
  PROP_AUTH_TOKEN,
  PROP_STUN_SERVER,
  PROP_TURN_SERVER,
  PROP_USE_LINK_HEADERS,
  PROP_TIMEOUT,
  PROP_RTCP_TIMEOUT,
  PROP_RETRY_TIMEOUT,
  PROP_ICE_ADDRESSES,
  PROP_LATENCY,
  PROP_VIDEO_BITRATE,
  PROP_VIDEO_CODEC,
  PROP_RESOURCE_URL,
  N_PROPS
};
static GParamSpec *props[N_PROPS];

G_DEFINE_TYPE_WITH_CODE(GstWhipwhepWhipSink, gst_whipwhep_whip_sink, GST_TYPE_BIN,
                        GST_DEBUG_CATEGORY_INIT(whipsink_debug, "whipsink", 0, "WHIP client sink"))
GST_ELEMENT_REGISTER_DEFINE(whipsink, "whipsink", GST_RANK_NONE, GST_TYPE_WHIPWHEP_WHIP_SINK)

static GstStaticPadTemplate video_template = GST_STATIC_PAD_TEMPLATE(
    "video_%u", GST_PAD_SINK, GST_PAD_REQUEST,
    GST_STATIC_CAPS("video/x-raw; video/x-vp8; video/x-vp9; "
                    "video/x-h264, stream-format=(string){ byte-stream, avc }, alignment=(string)au; "
                    "application/x-rtp, media=(string)video"));
static GstStaticPadTemplate audio_template = GST_STATIC_PAD_TEMPLATE(
    "audio_%u", GST_PAD_SINK, GST_PAD_REQUEST,
    GST_STATIC_CAPS("audio/x-raw; audio/x-opus; application/x-rtp, media=(string)audio"));

static void set_property(GObject *object, guint id, const GValue *value, GParamSpec *pspec) {
  Impl *impl = GST_WHIPWHEP_WHIP_SINK(object)->impl;
  std::lock_guard<std::mutex> l(impl->settings_lock);
  Settings &s = impl->settings;
  switch (id) {
    case PROP_WHIP_ENDPOINT: s.endpoint = gobj::str_or(g_value_get_string(value)); break;
    case PROP_AUTH_TOKEN: s.auth_token = gobj::str_or(g_value_get_string(value)); break;
    case PROP_STUN_SERVER: s.stun_server = gobj::str_or(g_value_get_string(value)); break;
    case PROP_TURN_SERVER: s.turn_server = gobj::str_or(g_value_get_string(value)); break;
    case PROP_USE_LINK_HEADERS: s.use_link_headers = g_value_get_boolean(value); break;
    case PROP_TIMEOUT: s.timeout = g_value_get_uint(value); break;
    case PROP_RTCP_TIMEOUT: s.rtcp_timeout = g_value_get_uint(value); break;
    case PROP_RETRY_TIMEOUT: s.retry_timeout = g_value_get_uint(value); break;
    case PROP_ICE_ADDRESSES: s.ice_addresses = gobj::str_or(g_value_get_string(value)); break;
    case PROP_LATENCY: s.latency = g_value_get_uint(value); break;
    case PROP_VIDEO_BITRATE: s.video_bitrate = g_value_get_uint(value); break;
    case PROP_VIDEO_CODEC: s.video_codec = gobj::str_or(g_value_get_string(value), kDefaultVideoCodec); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

static void get_property(GObject *object, guint id, GValue *value, GParamSpec *pspec) {
  Impl *impl = GST_WHIPWHEP_WHIP_SINK(object)->impl;
  if (id == PROP_RESOURCE_URL) {
    std::shared_ptr<whipwhep::ClientSession> s;
    {
      std::lock_guard<std::mutex> l(impl->lock);
      s = impl->session;
    }
    g_value_set_string(value, s ? s->resource_url().c_str() : "");
    return;
  }
  std::lock_guard<std::mutex> l(impl->settings_lock);
  Settings &s = impl->settings;
  switch (id) {
    case PROP_WHIP_ENDPOINT: g_value_set_string(value, s.endpoint.c_str()); break;
    case PROP_AUTH_TOKEN: g_value_set_string(value, s.auth_token.c_str()); break;
    case PROP_STUN_SERVER: g_value_set_string(value, s.stun_server.c_str()); break;
    case PROP_TURN_SERVER: g_value_set_string(value, s.turn_server.c_str()); break;
    case PROP_USE_LINK_HEADERS: g_value_set_boolean(value, s.use_link_headers); break;
    case PROP_TIMEOUT: g_value_set_uint(value, s.timeout); break;
    case PROP_RTCP_TIMEOUT: g_value_set_uint(value, s.rtcp_timeout); break;
    case PROP_RETRY_TIMEOUT: g_value_set_uint(value, s.retry_timeout); break;
    case PROP_ICE_ADDRESSES: g_value_set_string(value, s.ice_addresses.c_str()); break;
    case PROP_LATENCY: g_value_set_uint(value, s.latency); break;
    case PROP_VIDEO_BITRATE: g_value_set_uint(value, s.video_bitrate); break;
    case PROP_VIDEO_CODEC: g_value_set_string(value, s.video_codec.c_str()); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

static GstPad *request_new_pad(GstElement *element, GstPadTemplate *templ, const gchar *name,
                               const GstCaps *) {
  return GST_WHIPWHEP_WHIP_SINK(element)->impl->request_pad(templ, name);
}

static void release_pad(GstElement *element, GstPad *pad) {
  GST_WHIPWHEP_WHIP_SINK(element)->impl->release_pad(pad);
}

static GstStateChangeReturn change_state(GstElement *element, GstStateChange transition) {
  Impl *impl = GST_WHIPWHEP_WHIP_SINK(element)->impl;
  switch (transition) {
    case GST_STATE_CHANGE_NULL_TO_READY:
      if (!impl->start()) return GST_STATE_CHANGE_FAILURE;
      break;
    case GST_STATE_CHANGE_PAUSED_TO_READY: {
      // DELETE now, synchronously (bounded by `timeout`): the process may
      // exit right after the pipeline reaches NULL.
      std::shared_ptr<whipwhep::ClientSession> s;
      {
        std::lock_guard<std::mutex> l(impl->lock);
        impl->playing = false;
        s = impl->session;
      }
      if (s) s->end_sync();
      break;
    }
    case GST_STATE_CHANGE_PLAYING_TO_PAUSED: {
      std::lock_guard<std::mutex> l(impl->lock);
      impl->playing = false;
      break;
    }
    default: break;
  }
  GstStateChangeReturn ret =
      GST_ELEMENT_CLASS(gst_whipwhep_whip_sink_parent_class)->change_state(element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE) return ret;
  switch (transition) {
    case GST_STATE_CHANGE_PAUSED_TO_PLAYING: {
      {
        std::lock_guard<std::mutex> l(impl->lock);
        impl->playing = true;
      }
      impl->maybe_offer();
      break;
    }
    case GST_STATE_CHANGE_READY_TO_NULL: impl->stop(); break;
    default: break;
  }
  return ret;
}

static void handle_message(GstBin *bin, GstMessage *msg) {
  Impl *impl = GST_WHIPWHEP_WHIP_SINK(bin)->impl;
  if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
    // An internal element failed: end the WHIP session, then report.
    std::shared_ptr<whipwhep::ClientSession> s;
    {
      std::lock_guard<std::mutex> l(impl->lock);
      s = impl->session;
    }
    if (s) s->end_async();
  }
  GST_BIN_CLASS(gst_whipwhep_whip_sink_parent_class)->handle_message(bin, msg);
}

static void finalize(GObject *object) {
  auto *self = GST_WHIPWHEP_WHIP_SINK(object);
  delete self->impl;
  G_OBJECT_CLASS(gst_whipwhep_whip_sink_parent_class)->finalize(object);
}

static void gst_whipwhep_whip_sink_init(GstWhipwhepWhipSink *self) {
  self->impl = new Impl(GST_BIN(self));
  GST_OBJECT_FLAG_SET(self, GST_ELEMENT_FLAG_SINK);
}

static void gst_whipwhep_whip_sink_class_init(GstWhipwhepWhipSinkClass *klass) {
  GObjectClass *gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS(klass);
  gobject_class->set_property = set_property;
  gobject_class->get_property = get_property;
  gobject_class->finalize = finalize;
  element_class->change_state = change_state;
  element_class->request_new_pad = request_new_pad;
  element_class->release_pad = release_pad;
  GST_BIN_CLASS(klass)->handle_message = handle_message;

  constexpr auto rw = GParamFlags(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  props[PROP_WHIP_ENDPOINT] = g_param_spec_string(
      "whip-endpoint", "WHIP endpoint", "URL of the WHIP endpoint the offer is POSTed to (http or https)",
      nullptr, rw);
  props[PROP_AUTH_TOKEN] = g_param_spec_string(
      "auth-token", "Authorization token",
      "Bearer token sent as 'Authorization: Bearer <token>' on every WHIP request (kept across "
      "redirects); empty = none",
      nullptr, rw);
  props[PROP_STUN_SERVER] = g_param_spec_string(
      "stun-server", "STUN server", "STUN server as stun://host:port; empty = none", nullptr, rw);
  props[PROP_TURN_SERVER] = g_param_spec_string(
      "turn-server", "TURN server", "TURN server as turn(s)://user:password@host:port; empty = none",
      nullptr, rw);
  props[PROP_USE_LINK_HEADERS] = g_param_spec_boolean(
      "use-link-headers", "Use Link headers",
      "Apply the ICE servers the WHIP server lists in 'Link: <...>; rel=\"ice-server\"' headers of "
      "its 201. whipsink gathers before it POSTs, so they serve later ICE restarts, not the "
      "first connection: set stun-server/turn-server for that",
      TRUE, rw);
  props[PROP_TIMEOUT] = g_param_spec_uint(
      "timeout", "Timeout",
      "Seconds each HTTP request (redirects included) and the WebRTC connection may take before "
      "the element fails with an error",
      1, 3600, kDefaultTimeout, rw);
  props[PROP_RTCP_TIMEOUT] = g_param_spec_uint(
      "rtcp-timeout", "RTCP timeout",
      "Seconds without RTCP from the server, once connected, before the element fails with an "
      "error (the server ended the session or is gone); 0 = never",
      0, 3600, 20, rw);
  props[PROP_RETRY_TIMEOUT] = whipwhep::retry_timeout_param_spec(
      "a WHIP endpoint whose live input is busy or over a limit");
  props[PROP_ICE_ADDRESSES] = g_param_spec_string(
      "ice-addresses", "ICE addresses",
      "Comma-separated local IP addresses ICE may gather candidates on; empty = every interface "
      "except loopback",
      nullptr, rw);
  props[PROP_LATENCY] = g_param_spec_uint(
      "latency", "Latency",
      "Receive jitterbuffer latency in ms of the internal webrtcbin (whipsink only sends, so this "
      "only bounds RTCP-related buffering)",
      0, 10000, kDefaultLatency, rw);
  props[PROP_VIDEO_BITRATE] = g_param_spec_uint(
      "video-bitrate", "Video bitrate",
      "Target bitrate in kbit/s of the internal video encoder (raw video input only)", 50, 100000,
      kDefaultVideoBitrate, rw);
  props[PROP_VIDEO_CODEC] = g_param_spec_string(
      "video-codec", "Video codec",
      "Codec raw video is encoded to: 'vp8' (vp8enc) or 'h264' (x264enc, else openh264enc; "
      "constrained baseline). Encoded input is never re-encoded",
      kDefaultVideoCodec, rw);
  props[PROP_RESOURCE_URL] = g_param_spec_string(
      "resource-url", "Resource URL",
      "URL of the WHIP session resource (the 201's Location, resolved); empty when no session",
      nullptr, GParamFlags(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_properties(gobject_class, N_PROPS, props);

  gst_element_class_add_static_pad_template(element_class, &video_template);
  gst_element_class_add_static_pad_template(element_class, &audio_template);
  gst_element_class_set_static_metadata(
      element_class, "WHIP client sink", "Sink/Network/WebRTC",
      "Publishes audio and video to a WHIP server (RFC 9725): raw input is encoded (VP8/H.264, "
      "Opus), encoded input is only payloaded",
      "whipwhep");
}
