// whipwhep-bench-relay: the relay process the benchmarks measure.
//   --mode=ours   whipserversrc ! queue ! whepserversink (the product's relay,
//                 what whipwhep-server builds per live input)
//   --mode=ours-webrtcbin  the same with direct-send=false: every packet
//                 through each viewer's webrtcbin (the design before the
//                 direct send path, measured in the same run)
//   --mode=naive  whipserversrc ! payloader ! tee, and per WHEP viewer a
//                 leaky queue and one default webrtcbin (the baseline of issue 6)
// Both listen for WHIP on 127.0.0.1:<whip-port>/whip and WHEP on
// 127.0.0.1:<whep-port>/whep; ICE on 127.0.0.1 only. With --probe-latency the
// relay's own added latency is measured per frame: last packet of a frame
// entering the publisher webrtcbin's rtpbin (decrypted) -> the same frame's
// last packet leaving a viewer webrtcbin's rtpbin (before SRTP), matched by
// RTP timestamp+seq on the way in and by buffer PTS on the way out (the relay
// depayloads and payloads again, so seq/timestamp differ on the way out).
// With the direct send path (--mode=ours) the media no longer crosses the
// viewer's rtpbin; only its keepalive packets do, each the last packet of a
// frame, pushed right after that frame's batch went to the socket: the
// "out" time is then sampled once a second per viewer (DirectSender::
// kKeepaliveUs) instead of every frame: n in the result says how many.
// Prints "ready pid=..." once listening; on SIGTERM prints
// "relay-latency n=.. p50=.. p95=.. p99=.." and exits.
#include <glib-unix.h>
#include <gst/gst.h>
#include <gst/rtp/rtp.h>
#include <gst/webrtc/webrtc.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "bench-util.h"
#include "gobj.h"
#include "gslice-malloc.h"
#include "http-listener.h"
#include "http-types.h"
#include "ice.h"
#include "webrtc-negotiation.h"

namespace {

struct Relay;

// ---- relay-latency probes ---------------------------------------------------
struct LatencyProbes {
  std::mutex lock;
  std::map<std::pair<guint32, guint16>, double> arrival;  // (rtp ts, seq) -> ms
  std::map<GstClockTime, double> frame_in;                 // PTS -> arrival ms of marker packet
  std::vector<double> samples;
  std::map<GstClockTime, int> seen_out;  // count only the first viewer's copy per frame? no: all

  void on_in_packet(GstBuffer *buf) {
    GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
    if (!gst_rtp_buffer_map(buf, GST_MAP_READ, &rtp)) return;
    auto key = std::make_pair(gst_rtp_buffer_get_timestamp(&rtp), gst_rtp_buffer_get_seq(&rtp));
    gst_rtp_buffer_unmap(&rtp);
    std::lock_guard<std::mutex> l(lock);
    arrival.emplace(key, bench::now_ms());
    if (arrival.size() > 20000) arrival.erase(arrival.begin(), std::next(arrival.begin(), 10000));
  }
  void on_jitterbuffer_out(GstBuffer *buf) {
    GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
    if (!gst_rtp_buffer_map(buf, GST_MAP_READ, &rtp)) return;
    bool marker = gst_rtp_buffer_get_marker(&rtp);
    auto key = std::make_pair(gst_rtp_buffer_get_timestamp(&rtp), gst_rtp_buffer_get_seq(&rtp));
    gst_rtp_buffer_unmap(&rtp);
    if (!marker || !GST_BUFFER_PTS_IS_VALID(buf)) return;
    std::lock_guard<std::mutex> l(lock);
    auto it = arrival.find(key);
    if (it == arrival.end()) return;
    frame_in[GST_BUFFER_PTS(buf)] = it->second;
    if (frame_in.size() > 2000) frame_in.erase(frame_in.begin(), std::next(frame_in.begin(), 1000));
  }
  void on_out_packet(GstBuffer *buf) {
    if (!GST_BUFFER_PTS_IS_VALID(buf)) return;
    GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
    if (!gst_rtp_buffer_map(buf, GST_MAP_READ, &rtp)) return;
    bool marker = gst_rtp_buffer_get_marker(&rtp);
    gst_rtp_buffer_unmap(&rtp);
    if (!marker) return;
    double now = bench::now_ms();
    std::lock_guard<std::mutex> l(lock);
    auto it = frame_in.find(GST_BUFFER_PTS(buf));
    if (it != frame_in.end() && samples.size() < 2000000) samples.push_back(now - it->second);
  }
};

LatencyProbes g_probes;

template <void (LatencyProbes::*fn)(GstBuffer *)>
GstPadProbeReturn probe_cb(GstPad *, GstPadProbeInfo *info, gpointer) {
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
    (g_probes.*fn)(GST_PAD_PROBE_INFO_BUFFER(info));
  } else if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST) {
    GstBufferList *list = GST_PAD_PROBE_INFO_BUFFER_LIST(info);
    for (guint i = 0; i < gst_buffer_list_length(list); i++) (g_probes.*fn)(gst_buffer_list_get(list, i));
  }
  return GST_PAD_PROBE_OK;
}

const auto kDataProbe = GstPadProbeType(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST);

// Is `e` inside (at any depth) an element named `name`?
bool inside(GstElement *e, const char *name) {
  for (GstObject *p = GST_OBJECT_PARENT(e); p; p = GST_OBJECT_PARENT(p))
    if (g_strcmp0(GST_OBJECT_NAME(p), name) == 0) return true;
  return false;
}

void rtpbin_pad_added(GstElement *rtpbin, GstPad *pad, gpointer) {
  const char *name = GST_PAD_NAME(pad);
  bool input = inside(rtpbin, "src");
  if (input && g_str_has_prefix(name, "recv_rtp_sink_"))
    gst_pad_add_probe(pad, kDataProbe, probe_cb<&LatencyProbes::on_in_packet>, nullptr, nullptr);
  else if (input && g_str_has_prefix(name, "recv_rtp_src_"))
    gst_pad_add_probe(pad, kDataProbe, probe_cb<&LatencyProbes::on_jitterbuffer_out>, nullptr, nullptr);
  else if (!input && g_str_has_prefix(name, "send_rtp_src_"))
    gst_pad_add_probe(pad, kDataProbe, probe_cb<&LatencyProbes::on_out_packet>, nullptr, nullptr);
}

void deep_element_added(GstBin *, GstBin *, GstElement *element, gpointer) {
  GstElementFactory *f = gst_element_get_factory(element);
  if (f && g_strcmp0(GST_OBJECT_NAME(f), "rtpbin") == 0)
    g_signal_connect(element, "pad-added", G_CALLBACK(rtpbin_pad_added), nullptr);
}

// ---- the naive WHEP endpoint --------------------------------------------------
// A bin type that only carries the handle-request action signal, so that the
// project's HttpListener can serve it like whepserversink.
struct NaiveWhep {
  GstBin parent;
};
struct NaiveWhepClass {
  GstBinClass parent_class;
};
G_DEFINE_TYPE(NaiveWhep, naive_whep, GST_TYPE_BIN)
void naive_whep_init(NaiveWhep *) {}
void naive_whep_class_init(NaiveWhepClass *klass) {
  g_signal_new("handle-request", G_TYPE_FROM_CLASS(klass), GSignalFlags(G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION), 0,
               nullptr, nullptr, nullptr, G_TYPE_NONE, 2, GST_TYPE_STRUCTURE | G_SIGNAL_TYPE_STATIC_SCOPE,
               GST_TYPE_PROMISE);
}

struct Relay {
  std::string mode = "ours";
  guint whip_port = 0, whep_port = 0;
  bool probe = false;
  gobj::Ref<GstElement> pipeline, src, sink, tee, naive;
  std::unique_ptr<whipwhep::HttpListener> naive_listener;
  whipwhep::IceSettings ice;
  std::mutex lock;
  int viewers = 0;
};

void naive_request(GstElement *, GstStructure *request, GstPromise *promise, Relay *r) {
  whipwhep::HttpRequest req;
  whipwhep::request_from_structure(request, &req);
  if (req.method == "DELETE") {
    whipwhep::reply(promise, whipwhep::HttpResponse::text(200, "ok (naive relay keeps the branch)"));
    return;
  }
  if (req.method != "POST") {
    whipwhep::reply(promise, whipwhep::HttpResponse::text(405, "naive relay: POST only"));
    return;
  }
  // The tee is set on the publisher's streaming thread (src_pad_added).
  gobj::Ref<GstElement> tee;
  {
    std::lock_guard<std::mutex> l(r->lock);
    tee = r->tee;
  }
  gobj::Ref<GstPad> teesink;
  if (tee) teesink = gobj::adopt(gst_element_get_static_pad(tee.get(), "sink"));
  gobj::Ref<GstCaps> caps;
  if (teesink) caps = gobj::adopt(gst_pad_get_current_caps(teesink.get()));
  if (!caps) {
    whipwhep::reply(promise, whipwhep::HttpResponse::text(503, "no publisher yet"));
    return;
  }
  std::string err;
  GstSDPMessage *offer = whipwhep::parse_sdp(req.body_string(), &err);
  if (!offer) {
    whipwhep::reply(promise, whipwhep::HttpResponse::text(400, err));
    return;
  }
  int n;
  {
    std::lock_guard<std::mutex> l(r->lock);
    n = r->viewers++;
  }
  GstElement *q = gst_element_factory_make("queue", nullptr);
  g_object_set(q, "leaky", 2 /* downstream */, nullptr);
  GstElement *wb = gst_element_factory_make("webrtcbin", nullptr);
  g_object_set(wb, "bundle-policy", GST_WEBRTC_BUNDLE_POLICY_MAX_BUNDLE, nullptr);
  whipwhep::configure_ice(wb, r->ice);
  gst_bin_add_many(GST_BIN(r->pipeline.get()), q, wb, nullptr);
  gst_element_sync_state_with_parent(q);
  gst_element_sync_state_with_parent(wb);
  gobj::Ref<GstCaps> prefs = gobj::adopt(gst_caps_copy(caps.get()));
  GstStructure *s = gst_caps_get_structure(prefs.get(), 0);
  // The stream's profile-level-id (42c01f from x264) must not stop webrtcbin
  // matching whepsrc's 42e01f offer: both are constrained baseline.
  gst_structure_remove_fields(s, "ssrc", "seqnum-offset", "timestamp-offset", "profile-level-id",
                              "sprop-parameter-sets", nullptr);
  std::string session = whipwhep::random_id_hex128();
  gobj::Ref<GstPromise> p = gobj::ref(promise);
  // The callback runs on webrtcbin's thread: it holds what it links, and
  // nothing of the relay's (which main() owns) but those references.
  gobj::Ref<GstElement> webrtcbin = gobj::ref(wb), queue = gobj::ref(q);
  whipwhep::answer_offer(
      wb, offer,
      [webrtcbin, queue, tee, prefs]() -> std::string {
        GstElement *wb = webrtcbin.get(), *q = queue.get();
        GstPad *wsink = gst_element_request_pad_simple(wb, "sink_0");
        if (!wsink) return "no sink pad";
        gobj::Ref<GstPad> qsrc = gobj::adopt(gst_element_get_static_pad(q, "src"));
        gst_pad_link(qsrc.get(), wsink);
        gobj::Ref<GstWebRTCRTPTransceiver> trans;
        g_object_get(wsink, "transceiver", trans.out(), nullptr);
        if (trans)
          g_object_set(trans.get(), "direction", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDONLY,
                       "codec-preferences", prefs.get(), nullptr);
        gst_object_unref(wsink);
        GstPad *tsrc = gst_element_request_pad_simple(tee.get(), "src_%u");
        gobj::Ref<GstPad> qsink = gobj::adopt(gst_element_get_static_pad(q, "sink"));
        gst_pad_link(tsrc, qsink.get());
        gst_object_unref(tsrc);
        return "";
      },
      [p, session](bool ok, std::string text) {
        if (!ok) {
          whipwhep::reply(p.get(), whipwhep::HttpResponse::text(500, text));
          return;
        }
        whipwhep::HttpResponse resp;
        resp.status = 201;
        resp.content_type = "application/sdp";
        resp.body = text;
        resp.session = session;
        whipwhep::reply(p.get(), resp);
      });
  (void)n;
}

void src_pad_added(GstElement *, GstPad *pad, Relay *r) {
  if (!g_str_has_prefix(GST_PAD_NAME(pad), "video_")) return;  // the benches publish video only
  GstElement *q = gst_element_factory_make("queue", nullptr);
  g_object_set(q, "max-size-time", guint64(200 * GST_MSECOND), "max-size-bytes", 0u, "max-size-buffers", 0u,
               "leaky", 2, nullptr);
  gst_bin_add(GST_BIN(r->pipeline.get()), q);
  gst_element_sync_state_with_parent(q);
  gobj::Ref<GstPad> qsink = gobj::adopt(gst_element_get_static_pad(q, "sink"));
  if (r->mode != "naive") {
    GstPad *spad = gst_element_request_pad_simple(r->sink.get(), GST_PAD_NAME(pad));
    gobj::Ref<GstPad> qsrc = gobj::adopt(gst_element_get_static_pad(q, "src"));
    if (!spad || gst_pad_link(qsrc.get(), spad) != GST_PAD_LINK_OK) g_printerr("cannot link to whepserversink\n");
    if (spad) gst_object_unref(spad);
  } else {
    gobj::Ref<GstCaps> caps = gobj::adopt(gst_pad_query_caps(pad, nullptr));
    const char *name = gst_structure_get_name(gst_caps_get_structure(caps.get(), 0));
    GstElement *pay;
    if (g_str_has_prefix(name, "video/x-h264")) {
      // whipserversrc's output already has SPS/PPS before every IDR access
      // unit; rtph264pay's config-interval would repeat them before every
      // IDR slice and break multi-slice keyframes (see input-payloader.cpp).
      // PT 102 is what whepsrc offers for H.264 (one PT for every viewer:
      // the naive relay payloads once for its tee).
      pay = gst_element_factory_make("rtph264pay", nullptr);
      gst_util_set_object_arg(G_OBJECT(pay), "aggregate-mode", "zero-latency");
      g_object_set(pay, "pt", 102u, nullptr);
    } else {
      pay = gst_element_factory_make("rtpvp8pay", nullptr);
      gst_util_set_object_arg(G_OBJECT(pay), "picture-id-mode", "15-bit");
      g_object_set(pay, "pt", 96u, nullptr);
    }
    g_object_set(pay, "mtu", 1200u, nullptr);
    GstElement *tee = gst_element_factory_make("tee", "tee");
    g_object_set(tee, "allow-not-linked", TRUE, nullptr);
    gst_bin_add_many(GST_BIN(r->pipeline.get()), pay, tee, nullptr);
    gst_element_link_many(q, pay, tee, nullptr);
    gst_element_sync_state_with_parent(tee);
    gst_element_sync_state_with_parent(pay);
    std::lock_guard<std::mutex> l(r->lock);
    r->tee = gobj::ref(tee);
  }
  gst_pad_link(pad, qsink.get());
}

gboolean on_term(gpointer loop) {
  g_main_loop_quit(static_cast<GMainLoop *>(loop));
  return G_SOURCE_REMOVE;
}

}  // namespace

int main(int argc, char **argv) {
  // As whipwhep-server does (gslice-malloc.h), so the figures are the server's.
  whipwhep::reexec_with_gslice_on_malloc(argv);
  gst_init(&argc, &argv);
  Relay r;
  int max_seconds = 900;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto val = [&](const char *k) { return a.substr(strlen(k)); };
    if (a.rfind("--mode=", 0) == 0) r.mode = val("--mode=");
    else if (a.rfind("--whip-port=", 0) == 0) r.whip_port = guint(std::stoul(val("--whip-port=")));
    else if (a.rfind("--whep-port=", 0) == 0) r.whep_port = guint(std::stoul(val("--whep-port=")));
    else if (a.rfind("--max-seconds=", 0) == 0) max_seconds = std::stoi(val("--max-seconds="));
    else if (a == "--probe-latency") r.probe = true;
    else {
      g_printerr("usage: %s --mode=ours|ours-webrtcbin|naive --whip-port=P --whep-port=Q [--probe-latency] [--max-seconds=S]\n",
                 argv[0]);
      return 2;
    }
  }
  r.ice.local_addresses = {"127.0.0.1"};
  r.pipeline = gobj::sink(gst_pipeline_new("relay"));
  r.src = gobj::sink(gst_element_factory_make("whipserversrc", "src"));
  if (!r.src) {
    g_printerr("whipserversrc not found (GST_PLUGIN_PATH?)\n");
    return 1;
  }
  g_object_set(r.src.get(), "port", r.whip_port, "ice-addresses", "127.0.0.1", "latency", 40u, nullptr);
  gst_bin_add(GST_BIN(r.pipeline.get()), r.src.get());
  if (r.mode == "ours" || r.mode == "ours-webrtcbin") {
    r.sink = gobj::sink(gst_element_factory_make("whepserversink", "sink"));
    if (!r.sink) {
      g_printerr("whepserversink not found\n");
      return 1;
    }
    g_object_set(r.sink.get(), "port", r.whep_port, "ice-addresses", "127.0.0.1", "max-viewers", 0u,
                 "direct-send", gboolean(r.mode == "ours"), nullptr);
    // A/B of the shared ICE agents (0 = one agent per viewer).
    if (const char *per_agent = g_getenv("WHIPWHEP_BENCH_ICE_SESSIONS_PER_AGENT"))
      g_object_set(r.sink.get(), "ice-sessions-per-agent", guint(atoi(per_agent)), nullptr);
    // A/B of release-webrtcbin (0 = each viewer keeps its webrtcbin). The
    // relay-latency probes need it off: they time the keepalive packets
    // that still cross a viewer's webrtcbin (its rtpbin), and a released
    // viewer has none.
    if (const char *release = g_getenv("WHIPWHEP_BENCH_RELEASE_WEBRTCBIN"))
      g_object_set(r.sink.get(), "release-webrtcbin", gboolean(atoi(release) != 0), nullptr);
    gst_bin_add(GST_BIN(r.pipeline.get()), r.sink.get());
  } else if (r.mode == "naive") {
    r.naive = gobj::sink(GST_ELEMENT(g_object_new(naive_whep_get_type(), "name", "naive", nullptr)));
    g_signal_connect(r.naive.get(), "handle-request", G_CALLBACK(naive_request), &r);
    whipwhep::HttpListener::Options o;
    o.port = r.whep_port;
    o.path = "/whep";
    std::string err;
    r.naive_listener = whipwhep::HttpListener::start(r.naive.get(), o, &err);
    if (!r.naive_listener) {
      g_printerr("naive listener: %s\n", err.c_str());
      return 1;
    }
  } else {
    g_printerr("unknown mode %s\n", r.mode.c_str());
    return 2;
  }
  g_signal_connect(r.src.get(), "pad-added", G_CALLBACK(src_pad_added), &r);
  if (r.probe) g_signal_connect(r.pipeline.get(), "deep-element-added", G_CALLBACK(deep_element_added), nullptr);

  GMainLoop *loop = g_main_loop_new(nullptr, FALSE);
  gobj::Ref<GstBus> bus = gobj::adopt(gst_element_get_bus(r.pipeline.get()));
  gst_bus_add_signal_watch(bus.get());
  g_signal_connect(bus.get(), "message::error", G_CALLBACK(+[](GstBus *, GstMessage *m, gpointer) {
                     gobj::Unique<GError> e;
                     gobj::Unique<gchar> dbg;
                     gst_message_parse_error(m, gobj::out(e), gobj::out(dbg));
                     g_printerr("relay error from %s: %s (%s)\n", GST_OBJECT_NAME(m->src), e->message,
                                dbg.get() ? dbg.get() : "");
                   }),
                   nullptr);
  if (gst_element_set_state(r.pipeline.get(), GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    g_printerr("relay pipeline does not start\n");
    return 1;
  }
  g_unix_signal_add(SIGTERM, on_term, loop);
  g_unix_signal_add(SIGINT, on_term, loop);
  g_timeout_add_seconds(guint(max_seconds), on_term, loop);
  printf("ready pid=%d mode=%s\n", int(getpid()), r.mode.c_str());
  fflush(stdout);
  g_main_loop_run(loop);
  {
    std::lock_guard<std::mutex> l(g_probes.lock);
    auto &v = g_probes.samples;
    printf("relay-latency n=%zu p50=%.3f p95=%.3f p99=%.3f\n", v.size(), bench::percentile(v, 50),
           bench::percentile(v, 95), bench::percentile(v, 99));
    fflush(stdout);
  }
  gst_bus_remove_signal_watch(bus.get());
  // No new viewer while the pipeline stops.
  r.naive_listener.reset();
  gst_element_set_state(r.pipeline.get(), GST_STATE_NULL);
  g_main_loop_unref(loop);
  return 0;
}
