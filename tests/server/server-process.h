// Runs the real whipwhep-server binary for a test: on 127.0.0.1 with a port
// the system picks (read back from the ready line), a temporary data dir,
// ICE restricted to loopback; plus a small synchronous HTTP client.
#pragma once

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gobj.h"

namespace gobj {
GOBJ_DECLARE_BOXED(JsonNode, json_node_ref, json_node_unref)
}  // namespace gobj

namespace test {

// A temporary directory removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string &path() const { return path_; }
  std::string file(const char *name) const;

 private:
  std::string path_;
};

class ServerProcess {
 public:
  explicit ServerProcess(std::string data_dir);
  ~ServerProcess();  // SIGKILL if still running
  ServerProcess(const ServerProcess &) = delete;
  ServerProcess &operator=(const ServerProcess &) = delete;

  // Starts the binary with --listen 127.0.0.1:0 --data-dir <dir> and `args`
  // (`env` adds to the test's environment; an empty value unsets the name),
  // and waits (bounded) for its ready line. False if it exited or timed out.
  bool start(const std::vector<std::string> &args = {},
             const std::map<std::string, std::string> &env = {}, guint timeout_ms = 15000);
  // SIGTERM, then waits for the exit; returns the exit status (-1: still
  // running after timeout_ms, -2: killed by a signal).
  int terminate(guint timeout_ms = 15000);
  // SIGKILL and reap.
  void kill();
  // Waits for the process to exit by itself (e.g. refused to start).
  int wait_exit(guint timeout_ms = 15000);
  bool running() const;
  // The process id (0 when not started): tests read /proc/PID for its fds,
  // threads and memory.
  int pid() const;

  // Everything it printed so far (stdout and stderr merged).
  const std::string &output() const { return reader_->output; }
  bool wait_output(const std::string &needle, guint timeout_ms);

  // From the ready line: where it listens ("http://127.0.0.1:PORT"), the API
  // base there (".../client/v4/accounts/ID/stream"), the account id, and the
  // public URL it writes into webRTC.url etc. (base_url unless --public-url).
  std::string base_url, api_base, account_id, public_url;
  std::string live_inputs_url() const { return api_base + "/live_inputs"; }

 private:
  // Collects the output; shared with in-flight reads so that a read
  // completing after the ServerProcess is gone touches nothing freed.
  struct Reader {
    gobj::Ref<GDataInputStream> stream;
    std::string output;
    bool eof = false;
    bool exited = false;  // set by g_subprocess_wait_async's callback
  };
  static void read_next_line(const std::shared_ptr<Reader> &reader);

  std::string data_dir_;
  gobj::Ref<GSubprocess> proc_;
  std::shared_ptr<Reader> reader_ = std::make_shared<Reader>();
};

struct HttpReply {
  guint status = 0;    // 0: no response (see error)
  std::string error;   // transport error, if any
  std::string body;
  std::string content_type;
  std::map<std::string, std::string> headers;  // lowercased names; repeats joined with "\n"
  gobj::Ref<JsonNode> json;                    // parsed body when it is JSON
  std::string header(const std::string &lower_name) const;
  // Convenience on the API envelope.
  JsonObject *object() const;  // root object or null
  JsonObject *result() const;  // result object or null
};

// One synchronous request over a fresh SoupSession. `token` empty: no
// Authorization header. `content_type` empty: no body type.
HttpReply http(const std::string &method, const std::string &url, const std::string &token = "",
               const std::string &content_type = "", const std::string &body = "",
               const std::map<std::string, std::string> &headers = {});

// Exactly the bytes given, over a plain socket (for malformed or chunked
// requests that a client library would not send). Returns the raw response.
std::string raw_http(const std::string &base_url, const std::string &request_bytes,
                     guint timeout_ms = 10000);

}  // namespace test
