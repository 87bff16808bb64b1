// ICE settings shared by every element and the server: which local addresses
// libnice may gather on, STUN/TURN servers, no UPnP, no ICE-TCP.
#pragma once

#include <gst/gst.h>

#include <string>
#include <vector>

typedef struct _NiceAgent NiceAgent;

namespace whipwhep {

struct IceSettings {
  // Local addresses ICE may gather on; empty = every interface except
  // loopback (libnice's default). Tests always use {"127.0.0.1"}.
  std::vector<std::string> local_addresses;
  std::string stun_server;                // stun://host:port
  std::vector<std::string> turn_servers;  // turn(s)://user:pass@host:port
  bool ice_tcp = false;
};

// "a, b ,c" -> {"a","b","c"}; empty items dropped.
std::vector<std::string> split_list(const std::string &comma_separated);
std::string join_list(const std::vector<std::string> &items);

// Apply to a webrtcbin before it starts gathering (before the first
// set-local-description): restrict host candidates to local_addresses,
// switch UPnP off, set STUN/TURN. Returns false (and logs) if an address is
// not a valid IP address.
bool configure_ice(GstElement *webrtcbin, const IceSettings &settings);

// The part of configure_ice() that is the libnice agent's own (also for a
// shared agent, shared-ice.h): UPnP off, ICE-TCP as set, host candidates on
// local_addresses only. Returns false (and logs) for an invalid address.
bool configure_nice_agent(NiceAgent *agent, const IceSettings &settings);

// Parse one RFC 8288 `Link` header value list into STUN/TURN URLs usable by
// webrtcbin ("stun://host:port", "turn://user:pass@host:port"). Only entries
// with rel="ice-server" are taken.
std::vector<std::string> parse_ice_server_links(const std::string &link_header);

// Format an ice server URL (stun:host:port, turn:host:port?transport=udp with
// username/credential) as one Link header value.
std::string format_ice_server_link(const std::string &url, const std::string &username,
                                   const std::string &credential);

}  // namespace whipwhep
