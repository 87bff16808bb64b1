// whipwhep-server configuration: a GLib key file (see whipwhep-server.conf,
// which is also compiled in as the defaults), then command-line flags and
// environment variables on top.
#pragma once

#include <glib.h>

#include <string>
#include <vector>

namespace server {

struct Limits {
  guint max_live_inputs = 1000;
  guint max_viewers_per_input = 100;
  gsize max_body_bytes = 64 * 1024;
  gsize max_header_bytes = 16 * 1024;  // request headers, all together
  guint max_meta_bytes = 16 * 1024;
  guint request_timeout_seconds = 30;  // to receive a whole request (slow clients)
};

struct IceServer {
  std::string url;         // stun:host:port or turn:host:port?transport=udp
  std::string username;    // TURN only
  std::string credential;  // TURN only
};

struct Config {
  std::string listen_host = "127.0.0.1";
  guint listen_port = 8080;  // 0: any free port (the ready line names it)
  std::string public_url;    // empty: http://<listen>, filled in once listening
  std::string data_dir = "./whipwhep-data";
  std::string account_id;               // empty: generated and stored in the data dir
  std::vector<std::string> api_tokens;  // empty: env, else generated and stored
  std::string ice_addresses;            // comma list; empty = every interface
  std::vector<IceServer> ice_servers;   // advertised in Link headers
  Limits limits;
  std::vector<std::string> cors_origins = {"*"};
  bool replace_publisher = false;  // a new WHIP publisher replaces the live one (else 409)
  std::string pipeline_template;
};

// The default configuration file compiled into the binary.
std::string embedded_default_config();

// Loads key-file text on top of `config` (keys that are absent keep their
// value). `origin` names the source in error messages.
bool load_config_data(const std::string &data, const std::string &origin, Config *config,
                      GError **error);
bool load_config_file(const std::string &path, Config *config, GError **error);

// "ADDR:PORT", "[v6]:PORT" or "ADDR" -> host/port.
bool parse_listen(const std::string &text, std::string *host, guint *port, GError **error);

// The element names the server looks up in every per-input pipeline.
inline constexpr const char *kSourceName = "src";  // a whipserversrc
inline constexpr const char *kSinkName = "sink";   // a whepserversink

// The template with its placeholders filled in: @UID@ -> the live input's
// uid (32 hex characters), @DATA_DIR@ -> the absolute data dir. Both are
// ours (never request text), so the result is still operator text.
std::string expand_pipeline_template(const std::string &description, const std::string &uid,
                                     const std::string &data_dir);

// Parses the template once, checks it holds a whipserversrc named "src" and a
// whepserversink named "sink", then drops it. Error message names the problem.
bool validate_pipeline_template(const std::string &description, const std::string &data_dir,
                                GError **error);

}  // namespace server
