#include "shared-ice.h"

#include "ice-receive-src.h"
#include "shared-ice-agent.h"

#include <gst/webrtc/nice/nice.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

GST_DEBUG_CATEGORY(shared_ice_debug);
#define GST_CAT_DEFAULT shared_ice_debug

using namespace whipwhep;
using namespace whipwhep::shared_ice;

// Types registered once per process (gobj::register_type_once); the
// registrant attaches the process's one pool of agents to the ICE type.
static GType register_type_once(const char *name, GType parent, gsize class_size,
                                GClassInitFunc class_init, gsize instance_size,
                                GInstanceInitFunc instance_init) {
  bool registered = false;
  GType type = gobj::register_type_once(name, parent, class_size, class_init, instance_size,
                                        instance_init, &registered);
  if (registered && parent == GST_TYPE_WEBRTC_ICE) attach_pool(type);
  return type;
}

// ---- WhipwhepSharedIceStream: a GstWebRTCNiceStream on a shared agent -----
//
// GstWebRTCNiceStream connects its own "candidate-gathering-done" handler
// to the agent and disconnects it only while its GstWebRTCNice is alive;
// with a shared agent that handler would outlive every session. This
// subclass skips that constructor (the pool's one handler routes the signal
// here) and keeps its transports by weak reference.

struct SharedIceStreamState {
  std::mutex lock;
  bool gathered = false;
  bool gathering_started = false;
  std::vector<std::unique_ptr<GWeakRef, void (*)(GWeakRef *)>> transports;

  std::vector<gobj::Ref<GstWebRTCICETransport>> live_transports() {
    std::vector<gobj::Ref<GstWebRTCICETransport>> out;
    for (auto &w : transports)
      if (auto *t = static_cast<GstWebRTCICETransport *>(g_weak_ref_get(w.get())))
        out.push_back(gobj::adopt(t));
    return out;
  }
};

struct WhipwhepSharedIceStream {
  GstWebRTCNiceStream parent;
  SharedIceStreamState *state;
};
struct WhipwhepSharedIceStreamClass {
  GstWebRTCNiceStreamClass parent_class;
};
static gpointer whipwhep_shared_ice_stream_parent_class = nullptr;
static void whipwhep_shared_ice_stream_class_init(WhipwhepSharedIceStreamClass *klass);
static void whipwhep_shared_ice_stream_init(WhipwhepSharedIceStream *self);
static GType whipwhep_shared_ice_stream_get_type() {
  static GType type = register_type_once(
      "WhipwhepSharedIceStream", GST_TYPE_WEBRTC_NICE_STREAM,
      sizeof(WhipwhepSharedIceStreamClass),
      reinterpret_cast<GClassInitFunc>(whipwhep_shared_ice_stream_class_init),
      sizeof(WhipwhepSharedIceStream),
      reinterpret_cast<GInstanceInitFunc>(whipwhep_shared_ice_stream_init));
  return type;
}

#define SHARED_ICE_STREAM(o) (reinterpret_cast<WhipwhepSharedIceStream *>(o))

static void whipwhep_shared_ice_stream_init(WhipwhepSharedIceStream *self) {
  self->state = new SharedIceStreamState();
}

static void whipwhep_shared_ice_stream_finalize(GObject *object) {
  delete SHARED_ICE_STREAM(object)->state;
  G_OBJECT_CLASS(whipwhep_shared_ice_stream_parent_class)->finalize(object);
}

static void whipwhep_shared_ice_stream_constructed(GObject *object) {
  // GstWebRTCICEStream's, skipping GstWebRTCNiceStream's (see above).
  G_OBJECT_CLASS(g_type_class_peek(GST_TYPE_WEBRTC_ICE_STREAM))->constructed(object);
}

static GstWebRTCICETransport *whipwhep_shared_ice_stream_find_transport(
    GstWebRTCICEStream *stream, GstWebRTCICEComponent component) {
  SharedIceStreamState *st = SHARED_ICE_STREAM(stream)->state;
  std::lock_guard<std::mutex> g(st->lock);
  for (auto &t : st->live_transports())
    if (t->component == component) return t.release();
  // gst_webrtc_nice_transport_new() is declared but not exported (1.22).
  auto *trans = GST_WEBRTC_ICE_TRANSPORT(g_object_new(
      GST_TYPE_WEBRTC_NICE_TRANSPORT, "stream", stream, "component", component, nullptr));
  std::unique_ptr<GWeakRef, void (*)(GWeakRef *)> weak(g_new0(GWeakRef, 1), +[](GWeakRef *w) {
    g_weak_ref_clear(w);
    g_free(w);
  });
  g_weak_ref_init(weak.get(), trans);
  st->transports.push_back(std::move(weak));
  gobj::Ref<GstWebRTCICE> ice;
  g_object_get(stream, "ice", ice.out(), nullptr);
  if (!ice) return trans;
  // Receive on the agent's thread instead of a nicesrc thread per viewer
  // (ice-receive-src.h). The nicesrc is still floating: nothing owns it yet.
  gobj::Ref<NiceAgent> agent;
  g_object_get(ice.get(), "agent", agent.out(), nullptr);
  if (agent) {
    if (trans->src) gobj::sink(trans->src);
    trans->src = ice_receive_src_new(agent.get(), stream->stream_id,
                                     component == GST_WEBRTC_ICE_COMPONENT_RTP
                                         ? NICE_COMPONENT_TYPE_RTP
                                         : NICE_COMPONENT_TYPE_RTCP);
  }
  // GstWebRTCNiceTransport disconnects its handlers from the agent when
  // finalized, but only while its ICE object is alive, and webrtcbin may
  // drop the transport after the ICE object: the transport keeps it alive
  // (object data goes after the transport's own finalize has run).
  g_object_set_data_full(G_OBJECT(trans), "whipwhep-shared-ice", ice.release(),
                         reinterpret_cast<GDestroyNotify>(gst_object_unref));
  return trans;
}

static gboolean whipwhep_shared_ice_stream_gather_candidates(GstWebRTCICEStream *stream) {
  SharedIceStreamState *st = SHARED_ICE_STREAM(stream)->state;
  std::vector<gobj::Ref<GstWebRTCICETransport>> transports;
  bool first;
  {
    std::lock_guard<std::mutex> g(st->lock);
    if (st->gathered) return TRUE;
    transports = st->live_transports();
    first = !st->gathering_started;
    st->gathering_started = true;
  }
  for (auto &t : transports)
    gst_webrtc_ice_transport_gathering_state_change(t.get(),
                                                    GST_WEBRTC_ICE_GATHERING_STATE_GATHERING);
  gobj::Ref<GstWebRTCICE> ice;
  g_object_get(stream, "ice", ice.out(), nullptr);
  if (!ice) return FALSE;
  gobj::Ref<NiceAgent> agent;
  g_object_get(ice.get(), "agent", agent.out(), nullptr);
  if (first && (ice->min_rtp_port != 0 || ice->max_rtp_port != 65535)) {
    if (ice->min_rtp_port > ice->max_rtp_port) {
      GST_ERROR_OBJECT(ice.get(), "min-rtp-port %u > max-rtp-port %u", ice->min_rtp_port,
                       ice->max_rtp_port);
      return FALSE;
    }
    nice_agent_set_port_range(agent.get(), stream->stream_id, NICE_COMPONENT_TYPE_RTP,
                              ice->min_rtp_port, ice->max_rtp_port);
  }
  if (!nice_agent_gather_candidates(agent.get(), stream->stream_id)) return FALSE;
  // The sockets exist now: apply any socket buffer sizes (setting them is
  // how GstWebRTCNiceTransport applies them; its function is not exported).
  for (auto &t : transports) {
    gint send = 0, receive = 0;
    g_object_get(t.get(), "send-buffer-size", &send, "receive-buffer-size", &receive, nullptr);
    if (send || receive)
      g_object_set(t.get(), "send-buffer-size", send, "receive-buffer-size", receive, nullptr);
  }
  return TRUE;
}

static void whipwhep_shared_ice_stream_class_init(WhipwhepSharedIceStreamClass *klass) {
  whipwhep_shared_ice_stream_parent_class = g_type_class_peek_parent(klass);
  auto *gobject_class = G_OBJECT_CLASS(klass);
  gobject_class->constructed = whipwhep_shared_ice_stream_constructed;
  gobject_class->finalize = whipwhep_shared_ice_stream_finalize;
  auto *stream_class = GST_WEBRTC_ICE_STREAM_CLASS(klass);
  stream_class->find_transport = whipwhep_shared_ice_stream_find_transport;
  stream_class->gather_candidates = whipwhep_shared_ice_stream_gather_candidates;
}

namespace whipwhep {
namespace shared_ice {
void stream_gathering_done(GObject *stream) {
  SharedIceStreamState *st = SHARED_ICE_STREAM(stream)->state;
  std::vector<gobj::Ref<GstWebRTCICETransport>> transports;
  {
    std::lock_guard<std::mutex> g(st->lock);
    st->gathered = true;
    transports = st->live_transports();
  }
  for (auto &t : transports)
    gst_webrtc_ice_transport_gathering_state_change(t.get(),
                                                    GST_WEBRTC_ICE_GATHERING_STATE_COMPLETE);
}
}  // namespace shared_ice
}  // namespace whipwhep

// ---- WhipwhepSharedIce: one webrtcbin's view of a shared agent -----------

enum { PROP_0, PROP_AGENT };

struct SharedIceState {
  std::shared_ptr<AgentHost> host;
  std::shared_ptr<CandidateSink> sink = std::make_shared<CandidateSink>();
  std::mutex lock;
  struct Entry {
    guint session_id;
    gobj::Ref<GstWebRTCICEStream> stream;
  };
  std::vector<Entry> streams;
  std::string stun_server, turn_server, http_proxy;
  std::map<std::string, TurnServer> turn_servers;  // uri -> parsed
};

struct WhipwhepSharedIce {
  GstWebRTCICE parent;
  SharedIceState *state;
};
struct WhipwhepSharedIceClass {
  GstWebRTCICEClass parent_class;
};
static gpointer whipwhep_shared_ice_parent_class = nullptr;
static void whipwhep_shared_ice_class_init(WhipwhepSharedIceClass *klass);
static void whipwhep_shared_ice_init(WhipwhepSharedIce *self);
static GType whipwhep_shared_ice_get_type() {
  static GType type = [] {
    GST_DEBUG_CATEGORY_INIT(shared_ice_debug, "whipwhep-shared-ice", 0,
                            "ICE agent shared by many webrtcbins");
    return register_type_once("WhipwhepSharedIce", GST_TYPE_WEBRTC_ICE,
                              sizeof(WhipwhepSharedIceClass),
                              reinterpret_cast<GClassInitFunc>(whipwhep_shared_ice_class_init),
                              sizeof(WhipwhepSharedIce),
                              reinterpret_cast<GInstanceInitFunc>(whipwhep_shared_ice_init));
  }();
  return type;
}

static SharedIceState *state_of(GstWebRTCICE *ice) {
  return reinterpret_cast<WhipwhepSharedIce *>(ice)->state;
}
static NiceAgent *agent_of(GstWebRTCICE *ice) { return state_of(ice)->host->agent(); }

static void whipwhep_shared_ice_init(WhipwhepSharedIce *self) {
  self->state = new SharedIceState();
  self->parent.min_rtp_port = 0;
  self->parent.max_rtp_port = 65535;
}

static void whipwhep_shared_ice_finalize(GObject *object) {
  auto *ice = GST_WEBRTC_ICE(object);
  SharedIceState *st = state_of(ice);
  {
    std::lock_guard<std::mutex> g(st->sink->lock);
    st->sink->ice = nullptr;
  }
  st->sink->set(nullptr, nullptr, nullptr);
  if (st->host) {
    // The agent outlives this session: its streams (sockets, checks,
    // keepalives) go now.
    for (auto &e : st->streams) {
      st->host->remove_route(e.stream->stream_id);
      nice_agent_remove_stream(st->host->agent(), e.stream->stream_id);
    }
  }
  st->streams.clear();
  detach_host(st->host);
  delete st;
  G_OBJECT_CLASS(whipwhep_shared_ice_parent_class)->finalize(object);
}

static void whipwhep_shared_ice_get_property(GObject *object, guint id, GValue *value,
                                             GParamSpec *pspec) {
  if (id == PROP_AGENT)
    g_value_set_object(value, agent_of(GST_WEBRTC_ICE(object)));
  else
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
}

static GstWebRTCICEStream *whipwhep_shared_ice_add_stream(GstWebRTCICE *ice, guint session_id) {
  SharedIceState *st = state_of(ice);
  NiceAgent *agent = agent_of(ice);
  std::lock_guard<std::mutex> g(st->lock);
  for (auto &e : st->streams)
    if (e.session_id == session_id) {
      GST_ERROR_OBJECT(ice, "stream already added with session_id=%u", session_id);
      return nullptr;
    }
  guint stream_id = nice_agent_add_stream(agent, 1);
  auto stream = gobj::sink(GST_WEBRTC_ICE_STREAM(g_object_new(
      whipwhep_shared_ice_stream_get_type(), "ice", ice, "stream-id", stream_id, nullptr)));
  st->host->add_route(stream_id, std::make_shared<StreamRoute>(st->sink, session_id, stream.get()));
  TurnServer turn;
  if (!st->turn_server.empty() && parse_turn_server(st->turn_server.c_str(), &turn))
    apply_turn_server(agent, stream_id, turn);
  for (auto &t : st->turn_servers) apply_turn_server(agent, stream_id, t.second);
  GST_DEBUG_OBJECT(ice, "session %u is stream %u of agent %p", session_id, stream_id, agent);
  // As GstWebRTCNice (1.22): this object keeps the stream, webrtcbin borrows it.
  st->streams.push_back({session_id, stream});
  return stream.get();
}

static GstWebRTCICETransport *whipwhep_shared_ice_find_transport(
    GstWebRTCICE *, GstWebRTCICEStream *stream, GstWebRTCICEComponent component) {
  return gst_webrtc_ice_stream_find_transport(stream, component);
}

static gboolean whipwhep_shared_ice_gather_candidates(GstWebRTCICE *,
                                                      GstWebRTCICEStream *stream) {
  return gst_webrtc_ice_stream_gather_candidates(stream);
}

static void whipwhep_shared_ice_add_candidate(GstWebRTCICE *ice, GstWebRTCICEStream *stream,
                                              const gchar *candidate) {
  NiceAgent *agent = agent_of(ice);
  if (!candidate) {
    nice_agent_peer_candidate_gathering_done(agent, stream->stream_id);
    return;
  }
  NiceCandidate *cand = nice_agent_parse_remote_candidate_sdp(agent, stream->stream_id, candidate);
  if (!cand) {
    // mDNS (.local) host candidates are not resolved here: the viewer's
    // checks reach us and libnice learns its address as peer-reflexive.
    GST_INFO_OBJECT(ice, "ignoring candidate '%s'", candidate);
    return;
  }
  if (cand->component_id == NICE_COMPONENT_TYPE_RTP) {  // rtcp-mux only
    GSList list = {cand, nullptr};
    nice_agent_set_remote_candidates(agent, stream->stream_id, cand->component_id, &list);
  }
  nice_candidate_free(cand);
}

static gboolean whipwhep_shared_ice_set_local_credentials(GstWebRTCICE *ice,
                                                          GstWebRTCICEStream *stream,
                                                          const gchar *ufrag, const gchar *pwd) {
  return nice_agent_set_local_credentials(agent_of(ice), stream->stream_id, ufrag, pwd);
}

static gboolean whipwhep_shared_ice_set_remote_credentials(GstWebRTCICE *ice,
                                                           GstWebRTCICEStream *stream,
                                                           const gchar *ufrag, const gchar *pwd) {
  return nice_agent_set_remote_credentials(agent_of(ice), stream->stream_id, ufrag, pwd);
}

static gboolean whipwhep_shared_ice_add_turn_server(GstWebRTCICE *ice, const gchar *uri) {
  TurnServer turn;
  if (!parse_turn_server(uri, &turn)) {
    GST_ERROR_OBJECT(ice, "invalid TURN server '%s'", uri);
    return FALSE;
  }
  SharedIceState *st = state_of(ice);
  std::lock_guard<std::mutex> g(st->lock);
  if (st->turn_servers.emplace(uri, turn).second)
    for (auto &e : st->streams) apply_turn_server(agent_of(ice), e.stream->stream_id, turn);
  return TRUE;
}

static void whipwhep_shared_ice_set_is_controller(GstWebRTCICE *ice, gboolean controller) {
  gboolean now = FALSE;
  g_object_get(agent_of(ice), "controlling-mode", &now, nullptr);
  if (now == controller) return;
  if (state_of(ice)->host->streams() > 1)
    GST_WARNING_OBJECT(ice, "ICE role changes for every session of a shared agent");
  g_object_set(agent_of(ice), "controlling-mode", controller, nullptr);
}

static gboolean whipwhep_shared_ice_get_is_controller(GstWebRTCICE *ice) {
  gboolean controlling = FALSE;
  g_object_get(agent_of(ice), "controlling-mode", &controlling, nullptr);
  return controlling;
}

static void whipwhep_shared_ice_set_force_relay(GstWebRTCICE *ice, gboolean force) {
  // Agent-wide in libnice: refused rather than imposed on other sessions.
  if (force) GST_WARNING_OBJECT(ice, "force-relay is not available on a shared ICE agent");
}

static void set_string(GstWebRTCICE *ice, std::string SharedIceState::*field, const gchar *v) {
  SharedIceState *st = state_of(ice);
  std::lock_guard<std::mutex> g(st->lock);
  st->*field = gobj::str_or(v);
}
static gchar *get_string(GstWebRTCICE *ice, std::string SharedIceState::*field) {
  SharedIceState *st = state_of(ice);
  std::lock_guard<std::mutex> g(st->lock);
  return (st->*field).empty() ? nullptr : g_strdup((st->*field).c_str());
}

static void whipwhep_shared_ice_set_stun_server(GstWebRTCICE *ice, const gchar *uri) {
  // Kept for the getter: the agent's STUN server is the one its pool key
  // names, set when the agent was made (shared-ice-agent.cpp).
  set_string(ice, &SharedIceState::stun_server, uri);
}
static gchar *whipwhep_shared_ice_get_stun_server(GstWebRTCICE *ice) {
  return get_string(ice, &SharedIceState::stun_server);
}
static void whipwhep_shared_ice_set_turn_server(GstWebRTCICE *ice, const gchar *uri) {
  TurnServer turn;
  if (uri && !parse_turn_server(uri, &turn)) {
    GST_ERROR_OBJECT(ice, "invalid TURN server '%s'", uri);
    return;
  }
  set_string(ice, &SharedIceState::turn_server, uri);
}
static gchar *whipwhep_shared_ice_get_turn_server(GstWebRTCICE *ice) {
  return get_string(ice, &SharedIceState::turn_server);
}
static void whipwhep_shared_ice_set_http_proxy(GstWebRTCICE *ice, const gchar *uri) {
  // Agent-wide in libnice, like force-relay.
  if (uri && *uri) GST_WARNING_OBJECT(ice, "http-proxy is not available on a shared ICE agent");
  set_string(ice, &SharedIceState::http_proxy, uri);
}
static gchar *whipwhep_shared_ice_get_http_proxy(GstWebRTCICE *ice) {
  return get_string(ice, &SharedIceState::http_proxy);
}

static void whipwhep_shared_ice_set_tos(GstWebRTCICE *ice, GstWebRTCICEStream *stream,
                                        guint tos) {
  nice_agent_set_stream_tos(agent_of(ice), stream->stream_id, tos);
}

static void whipwhep_shared_ice_set_on_ice_candidate(GstWebRTCICE *ice,
                                                     GstWebRTCICEOnCandidateFunc func,
                                                     gpointer data, GDestroyNotify notify) {
  state_of(ice)->sink->set(func, data, notify);
}

static const gchar *candidate_type_name(NiceCandidateType type) {
  switch (type) {
    case NICE_CANDIDATE_TYPE_HOST: return "host";
    case NICE_CANDIDATE_TYPE_SERVER_REFLEXIVE: return "srflx";
    case NICE_CANDIDATE_TYPE_PEER_REFLEXIVE: return "prflx";
    case NICE_CANDIDATE_TYPE_RELAYED: return "relay";
  }
  return "host";
}

static GstWebRTCICECandidateStats *candidate_stats(NiceCandidate *c, GstWebRTCICEStream *stream) {
  auto *stats = g_new0(GstWebRTCICECandidateStats, 1);
  gchar ip[NICE_ADDRESS_STRING_LEN];
  nice_address_to_string(&c->addr, ip);
  stats->ipaddr = g_strdup(ip);
  stats->port = nice_address_get_port(&c->addr);
  stats->stream_id = stream->stream_id;
  stats->type = candidate_type_name(c->type);
  stats->proto = c->transport == NICE_CANDIDATE_TRANSPORT_UDP ? "udp" : "tcp";
  stats->prio = c->priority;
  stats->url = g_strdup("");
  return stats;
}

static GstWebRTCICECandidateStats **candidate_list_stats(GSList *cands,
                                                         GstWebRTCICEStream *stream) {
  GPtrArray *result = g_ptr_array_new();
  for (GSList *l = cands; l; l = l->next)
    g_ptr_array_add(result, candidate_stats(static_cast<NiceCandidate *>(l->data), stream));
  g_ptr_array_add(result, nullptr);
  g_slist_free_full(cands, reinterpret_cast<GDestroyNotify>(nice_candidate_free));
  return reinterpret_cast<GstWebRTCICECandidateStats **>(g_ptr_array_free(result, FALSE));
}

static GstWebRTCICECandidateStats **whipwhep_shared_ice_get_local_candidates(
    GstWebRTCICE *ice, GstWebRTCICEStream *stream) {
  return candidate_list_stats(
      nice_agent_get_local_candidates(agent_of(ice), stream->stream_id, NICE_COMPONENT_TYPE_RTP),
      stream);
}

static GstWebRTCICECandidateStats **whipwhep_shared_ice_get_remote_candidates(
    GstWebRTCICE *ice, GstWebRTCICEStream *stream) {
  return candidate_list_stats(
      nice_agent_get_remote_candidates(agent_of(ice), stream->stream_id, NICE_COMPONENT_TYPE_RTP),
      stream);
}

static gboolean whipwhep_shared_ice_get_selected_pair(GstWebRTCICE *ice,
                                                      GstWebRTCICEStream *stream,
                                                      GstWebRTCICECandidateStats **local,
                                                      GstWebRTCICECandidateStats **remote) {
  NiceCandidate *l = nullptr, *r = nullptr;
  if (!stream || !nice_agent_get_selected_pair(agent_of(ice), stream->stream_id,
                                               NICE_COMPONENT_TYPE_RTP, &l, &r))
    return FALSE;
  *local = candidate_stats(l, stream);
  *remote = candidate_stats(r, stream);
  return TRUE;
}

static void whipwhep_shared_ice_class_init(WhipwhepSharedIceClass *klass) {
  whipwhep_shared_ice_parent_class = g_type_class_peek_parent(klass);
  auto *gobject_class = G_OBJECT_CLASS(klass);
  gobject_class->finalize = whipwhep_shared_ice_finalize;
  gobject_class->get_property = whipwhep_shared_ice_get_property;
  // GstWebRTCNiceStream/-Transport and our direct send path find the
  // libnice agent through this property, as on GstWebRTCNice.
  g_object_class_install_property(
      gobject_class, PROP_AGENT,
      g_param_spec_object("agent", "ICE agent", "The libnice agent shared by this ICE object",
                          NICE_TYPE_AGENT, GParamFlags(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));
  auto *k = GST_WEBRTC_ICE_CLASS(klass);
  k->add_stream = whipwhep_shared_ice_add_stream;
  k->find_transport = whipwhep_shared_ice_find_transport;
  k->gather_candidates = whipwhep_shared_ice_gather_candidates;
  k->add_candidate = whipwhep_shared_ice_add_candidate;
  k->set_local_credentials = whipwhep_shared_ice_set_local_credentials;
  k->set_remote_credentials = whipwhep_shared_ice_set_remote_credentials;
  k->add_turn_server = whipwhep_shared_ice_add_turn_server;
  k->set_is_controller = whipwhep_shared_ice_set_is_controller;
  k->get_is_controller = whipwhep_shared_ice_get_is_controller;
  k->set_force_relay = whipwhep_shared_ice_set_force_relay;
  k->set_stun_server = whipwhep_shared_ice_set_stun_server;
  k->get_stun_server = whipwhep_shared_ice_get_stun_server;
  k->set_turn_server = whipwhep_shared_ice_set_turn_server;
  k->get_turn_server = whipwhep_shared_ice_get_turn_server;
  k->set_http_proxy = whipwhep_shared_ice_set_http_proxy;
  k->get_http_proxy = whipwhep_shared_ice_get_http_proxy;
  k->set_tos = whipwhep_shared_ice_set_tos;
  k->set_on_ice_candidate = whipwhep_shared_ice_set_on_ice_candidate;
  k->get_local_candidates = whipwhep_shared_ice_get_local_candidates;
  k->get_remote_candidates = whipwhep_shared_ice_get_remote_candidates;
  k->get_selected_pair = whipwhep_shared_ice_get_selected_pair;
}

namespace whipwhep {

GType shared_ice::shared_ice_gtype() { return whipwhep_shared_ice_get_type(); }

gobj::Ref<GstWebRTCICE> shared_ice_new(const IceSettings &settings, guint sessions_per_agent,
                                       const char *name) {
  auto ice = gobj::sink(GST_WEBRTC_ICE(
      g_object_new(whipwhep_shared_ice_get_type(), "name", name, nullptr)));
  SharedIceState *st = state_of(ice.get());
  st->host = attach_host(settings, std::max(1u, sessions_per_agent));
  st->sink->ice = ice.get();
  return ice;
}

bool is_shared_ice(gpointer ice) {
  return ice && G_TYPE_CHECK_INSTANCE_TYPE(ice, whipwhep_shared_ice_get_type());
}

guint ice_stream_id_of(GstElement *webrtcbin) {
  gobj::Ref<GstWebRTCRTPTransceiver> trans;
  g_signal_emit_by_name(webrtcbin, "get-transceiver", 0, trans.out());
  if (!trans) return 0;
  gobj::Ref<GstWebRTCRTPSender> sender;
  g_object_get(trans.get(), "sender", sender.out(), nullptr);
  if (!sender) return 0;
  gobj::Ref<GstWebRTCDTLSTransport> dtls;
  g_object_get(sender.get(), "transport", dtls.out(), nullptr);
  if (!dtls) return 0;
  gobj::Ref<GstWebRTCICETransport> ice;
  g_object_get(dtls.get(), "transport", ice.out(), nullptr);
  if (!ice || !g_object_class_find_property(G_OBJECT_GET_CLASS(ice.get()), "stream")) return 0;
  gobj::Ref<GstWebRTCICEStream> stream;
  g_object_get(ice.get(), "stream", stream.out(), nullptr);
  return stream ? stream->stream_id : 0;
}

}  // namespace whipwhep
