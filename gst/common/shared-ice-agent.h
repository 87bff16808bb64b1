// Internals of shared-ice.cpp: the pooled libnice agents and what their
// signals reach. Not for use elsewhere.
#pragma once

#include "gobj.h"
#include "ice.h"

#include <gst/webrtc/ice.h>
#include <nice/agent.h>

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace whipwhep {
namespace shared_ice {

// The webrtcbin's on-candidate callback. Shared with the routes so that the
// agent's thread never touches a finalized ICE object: finalize clears it
// under the lock.
struct CandidateSink {
  std::mutex lock;
  GstWebRTCICE *ice = nullptr;  // borrowed while set
  GstWebRTCICEOnCandidateFunc func = nullptr;
  gpointer data = nullptr;
  GDestroyNotify notify = nullptr;

  void set(GstWebRTCICEOnCandidateFunc f, gpointer d, GDestroyNotify n);
};

// What the agent's signals about one libnice stream reach.
struct StreamRoute {
  std::shared_ptr<CandidateSink> sink;
  guint session_id;
  GWeakRef stream;  // the WhipwhepSharedIceStream
  StreamRoute(std::shared_ptr<CandidateSink> s, guint session, gpointer st);
  ~StreamRoute();
  StreamRoute(const StreamRoute &) = delete;
  StreamRoute &operator=(const StreamRoute &) = delete;
};

// Implemented with the stream type (shared-ice.cpp).
void stream_gathering_done(GObject *stream);

// One NiceAgent with its own main context thread, shared by the sessions of
// one settings key.
class AgentHost {
 public:
  AgentHost(const IceSettings &settings, std::string key, guint sessions_per_agent);
  ~AgentHost();
  AgentHost(const AgentHost &) = delete;
  AgentHost &operator=(const AgentHost &) = delete;

  NiceAgent *agent() const { return agent_.get(); }
  const std::string &key() const { return key_; }

  void add_route(guint stream_id, std::shared_ptr<StreamRoute> route);
  void remove_route(guint stream_id);
  std::shared_ptr<StreamRoute> route(guint stream_id);
  guint streams();

  guint sessions = 0;  // under the pool's lock

 private:
  static gpointer run(gpointer data);
  static void on_new_candidate(NiceAgent *agent, NiceCandidate *candidate, gpointer data);
  static void on_gathering_done(NiceAgent *, guint stream_id, gpointer data);

  std::string key_;
  gobj::Ref<GMainContext> context_;
  gobj::Ref<GMainLoop> loop_;
  GThread *thread_ = nullptr;
  gobj::Ref<NiceAgent> agent_;
  gulong candidate_handler_ = 0, gathered_handler_ = 0;
  std::mutex routes_lock_;
  std::unordered_map<guint, std::shared_ptr<StreamRoute>> routes_;
};

// The ICE object's GType (registered once per process, shared-ice.cpp), and
// the process's one pool of agents, attached to it by whoever registers it.
GType shared_ice_gtype();
void attach_pool(GType type);

// A host for these settings with room for one more session (made if none).
std::shared_ptr<AgentHost> attach_host(const IceSettings &settings, guint per_agent);
// One session fewer; the host (agent and thread) goes with its last.
void detach_host(std::shared_ptr<AgentHost> &host);

// TURN servers, parsed as GstWebRTCNice parses them.
struct TurnServer {
  std::string host, user, pass;
  guint port = 0;
  std::vector<NiceRelayType> relays;
};
bool parse_turn_server(const gchar *uri_string, TurnServer *out);
void apply_turn_server(NiceAgent *agent, guint stream_id, const TurnServer &t);

}  // namespace shared_ice
}  // namespace whipwhep
