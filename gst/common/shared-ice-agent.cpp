#include "shared-ice-agent.h"

#include <algorithm>

GST_DEBUG_CATEGORY_EXTERN(shared_ice_debug);
#define GST_CAT_DEFAULT shared_ice_debug

namespace whipwhep {
namespace shared_ice {

void CandidateSink::set(GstWebRTCICEOnCandidateFunc f, gpointer d, GDestroyNotify n) {
  GDestroyNotify old_notify;
  gpointer old_data;
  {
    std::lock_guard<std::mutex> g(lock);
    old_notify = notify;
    old_data = data;
    func = f;
    data = d;
    notify = n;
  }
  if (old_notify) old_notify(old_data);
}

StreamRoute::StreamRoute(std::shared_ptr<CandidateSink> s, guint session, gpointer st)
    : sink(std::move(s)), session_id(session) {
  g_weak_ref_init(&stream, st);
}

StreamRoute::~StreamRoute() { g_weak_ref_clear(&stream); }

namespace {
constexpr guint kTaMs = 20;  // libnice's default stun-pacing-timer
constexpr guint kMinTaMs = 4;
}  // namespace

AgentHost::AgentHost(const IceSettings &settings, std::string key, guint sessions_per_agent)
    : key_(std::move(key)) {
  context_ = gobj::adopt(g_main_context_new());
  loop_ = gobj::adopt(g_main_loop_new(context_.get(), FALSE));
  thread_ = g_thread_new("ice-agent", &AgentHost::run, this);
  // As GstWebRTCNice (1.22) makes its agent.
  agent_ = gobj::adopt(nice_agent_new_full(
      context_.get(), NICE_COMPATIBILITY_RFC5245,
      NiceAgentOption(NICE_AGENT_OPTION_ICE_TRICKLE | NICE_AGENT_OPTION_REGULAR_NOMINATION)));
  configure_nice_agent(agent_.get(), settings);
  // Agent-wide, so here once: the pool keys agents by STUN server.
  if (GstUri *uri = settings.stun_server.empty()
                        ? nullptr
                        : gst_uri_from_string_escaped(settings.stun_server.c_str())) {
    if (const gchar *host = gst_uri_get_host(uri)) {
      const guint port = gst_uri_get_port(uri);
      g_object_set(agent_.get(), "stun-server", host, "stun-server-port",
                   port == GST_URI_NO_PORT ? 3478u : port, nullptr);
    }
    gst_uri_unref(uri);
  }
  // libnice paces ordinary connectivity checks per agent, one every Ta
  // (20 ms) over all its streams: a burst of viewers sharing the agent
  // queued behind each other (set-up rate 72/s at 32 per agent against 97/s
  // with an agent each). Ta shrinks with the number of sessions served, so
  // each session is paced about as if it had the agent alone, but not below
  // kMinTaMs: each tick of that timer scans every check list of the agent
  // (libnice 0.1.21 priv_conn_check_tick_agent_locked, a third of the
  // agent threads' time in a burst), and it keeps ticking for the agent's
  // idle-timeout (5 s) after its last check, i.e. after every join. At
  // 1 ms, a burst of 200 joins left the relay 0.37 CPU s/s busier for the
  // next 6 s; at 4 ms 0.25, with no loss in set-up rate or time to media
  // (bench/RESULTS.md, session 13).
  g_object_set(agent_.get(), "stun-pacing-timer",
               std::max(kMinTaMs, kTaMs / sessions_per_agent), nullptr);
  candidate_handler_ = g_signal_connect(agent_.get(), "new-candidate-full",
                                        G_CALLBACK(&AgentHost::on_new_candidate), this);
  gathered_handler_ = g_signal_connect(agent_.get(), "candidate-gathering-done",
                                       G_CALLBACK(&AgentHost::on_gathering_done), this);
  GST_INFO("new shared ICE agent %p for '%s'", agent_.get(), key_.c_str());
}

AgentHost::~AgentHost() {
  g_signal_handler_disconnect(agent_.get(), candidate_handler_);
  g_signal_handler_disconnect(agent_.get(), gathered_handler_);
  // An idle source, not g_main_loop_quit(): quitting before the thread
  // entered the loop would be lost.
  GSource *quit = g_idle_source_new();
  g_source_set_callback(
      quit,
      +[](gpointer loop) {
        g_main_loop_quit(static_cast<GMainLoop *>(loop));
        return G_SOURCE_REMOVE;
      },
      loop_.get(), nullptr);
  g_source_attach(quit, context_.get());
  g_source_unref(quit);
  g_thread_join(thread_);
  GST_INFO("shared ICE agent %p closed", agent_.get());

}

void AgentHost::add_route(guint stream_id, std::shared_ptr<StreamRoute> route) {
  std::lock_guard<std::mutex> g(routes_lock_);
  routes_[stream_id] = std::move(route);
}

void AgentHost::remove_route(guint stream_id) {
  std::lock_guard<std::mutex> g(routes_lock_);
  routes_.erase(stream_id);
}

std::shared_ptr<StreamRoute> AgentHost::route(guint stream_id) {
  std::lock_guard<std::mutex> g(routes_lock_);
  auto it = routes_.find(stream_id);
  return it == routes_.end() ? nullptr : it->second;
}

guint AgentHost::streams() {
  std::lock_guard<std::mutex> g(routes_lock_);
  return guint(routes_.size());
}

gpointer AgentHost::run(gpointer data) {
  auto *self = static_cast<AgentHost *>(data);
  g_main_context_push_thread_default(self->context_.get());
  g_main_loop_run(self->loop_.get());
  g_main_context_pop_thread_default(self->context_.get());
  return nullptr;
}

void AgentHost::on_new_candidate(NiceAgent *agent, NiceCandidate *candidate, gpointer data) {
  auto route = static_cast<AgentHost *>(data)->route(candidate->stream_id);
  if (!route) return;
  if (!candidate->username || !candidate->password) {
    gchar *ufrag = nullptr, *pwd = nullptr;
    if (nice_agent_get_local_credentials(agent, candidate->stream_id, &ufrag, &pwd)) {
      if (!candidate->username) candidate->username = std::exchange(ufrag, nullptr);
      if (!candidate->password) candidate->password = std::exchange(pwd, nullptr);
    }
    g_free(ufrag);
    g_free(pwd);
  }
  gobj::Unique<gchar> attr(nice_agent_generate_local_candidate_sdp(agent, candidate));
  CandidateSink &sink = *route->sink;
  std::lock_guard<std::mutex> g(sink.lock);
  if (sink.ice && sink.func) sink.func(sink.ice, route->session_id, attr.get(), sink.data);
}

void AgentHost::on_gathering_done(NiceAgent *, guint stream_id, gpointer data) {
  auto route = static_cast<AgentHost *>(data)->route(stream_id);
  if (!route) return;
  if (GObject *stream = G_OBJECT(g_weak_ref_get(&route->stream))) {
    stream_gathering_done(stream);
    g_object_unref(stream);
  }
}

struct Pool {
  std::mutex lock;
  std::vector<std::shared_ptr<AgentHost>> hosts;
};

namespace {

GQuark pool_quark() { return g_quark_from_static_string("whipwhep-shared-ice-pool"); }

// One pool per process, hung on the shared GType: the plugin and a program
// linking this library each carry a copy of this code, and the objects of
// one copy may run the other's (the type's functions are the first
// registrant's), so no copy may keep a pool of its own.
Pool &pool() {
  const GType type = shared_ice_gtype();
  gpointer p;
  while (!(p = g_type_get_qdata(type, pool_quark())))
    g_thread_yield();  // the registering copy is about to attach it
  return *static_cast<Pool *>(p);
}

}  // namespace

void attach_pool(GType type) {
  // Never destroyed: sessions may outlive static destruction at exit.
  g_type_set_qdata(type, pool_quark(), new Pool());
}

namespace {

std::string settings_key(const IceSettings &s) {
  return join_list(s.local_addresses) + "|" + (s.ice_tcp ? "tcp" : "") + "|" + s.stun_server;
}

}  // namespace

std::shared_ptr<AgentHost> attach_host(const IceSettings &settings, guint per_agent) {
  // The capacity is part of the key: it sets the agent's check pacing, and
  // an element asking for N sessions per agent gets agents of N, not places
  // left on another element's larger ones.
  const std::string key = settings_key(settings) + "|per-agent=" + std::to_string(per_agent);
  Pool &p = pool();
  std::lock_guard<std::mutex> g(p.lock);
  for (auto &h : p.hosts)
    if (h->key() == key && h->sessions < per_agent) {
      h->sessions++;
      return h;
    }
  auto h = std::make_shared<AgentHost>(settings, key, per_agent);
  h->sessions = 1;
  p.hosts.push_back(h);
  return h;
}

void detach_host(std::shared_ptr<AgentHost> &host) {
  if (!host) return;
  {
    Pool &p = pool();
    std::lock_guard<std::mutex> g(p.lock);
    if (--host->sessions == 0)
      p.hosts.erase(std::remove(p.hosts.begin(), p.hosts.end(), host), p.hosts.end());
  }
  host.reset();  // the last holder joins the agent's thread, outside the lock
}

bool parse_turn_server(const gchar *uri_string, TurnServer *out) {
  GstUri *uri = gst_uri_from_string_escaped(uri_string);
  if (!uri) return false;
  const gchar *scheme = gst_uri_get_scheme(uri);
  const gchar *transport = gst_uri_get_query_value(uri, "transport");
  const gchar *host = gst_uri_get_host(uri);
  const gchar *userinfo = gst_uri_get_userinfo(uri);
  const gchar *colon = userinfo ? strchr(userinfo, ':') : nullptr;
  const bool tls = g_strcmp0(scheme, "turns") == 0;
  bool ok = host && colon && (tls || g_strcmp0(scheme, "turn") == 0) &&
            (!transport || g_str_equal(transport, "udp") || g_str_equal(transport, "tcp"));
  if (ok) {
    out->host = host;
    gobj::Unique<gchar> user(g_uri_unescape_segment(userinfo, colon, nullptr));
    gobj::Unique<gchar> pass(g_uri_unescape_string(colon + 1, nullptr));
    out->user = gobj::str_or(user.get());
    out->pass = gobj::str_or(pass.get());
    guint port = gst_uri_get_port(uri);
    out->port = port != GST_URI_NO_PORT ? port : tls ? 5349 : 3478;
    if (tls) out->relays.push_back(NICE_RELAY_TYPE_TURN_TLS);
    if (!tls && (!transport || g_str_equal(transport, "udp")))
      out->relays.push_back(NICE_RELAY_TYPE_TURN_UDP);
    if (!tls && (!transport || g_str_equal(transport, "tcp")))
      out->relays.push_back(NICE_RELAY_TYPE_TURN_TCP);
  }
  gst_uri_unref(uri);
  return ok;
}

void apply_turn_server(NiceAgent *agent, guint stream_id, const TurnServer &t) {
  for (NiceRelayType relay : t.relays)
    if (!nice_agent_set_relay_info(agent, stream_id, NICE_COMPONENT_TYPE_RTP, t.host.c_str(),
                                   t.port, t.user.c_str(), t.pass.c_str(), relay))
      GST_ERROR("could not set TURN server %s:%u on stream %u", t.host.c_str(), t.port, stream_id);
}

}  // namespace shared_ice
}  // namespace whipwhep
