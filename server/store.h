// Durable storage of live inputs: one SQLite database in the data dir (WAL,
// synchronous=FULL, every write a transaction), so an input whose creation
// was answered with success survives a restart or a SIGKILL.
//
// Single-threaded: used only from the server's main context.
#pragma once

#include <glib.h>

#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace server {

struct Recording {
  std::string mode = "off";  // "off" | "automatic"
  gint64 timeout_seconds = 0;
  bool require_signed_urls = false;
  std::optional<std::vector<std::string>> allowed_origins;  // null when unset
};

struct LiveInputRecord {
  std::string uid;     // 32 lowercase hex, public (playback URL)
  std::string secret;  // 32 lowercase hex, 128 random bits, publish URL only
  std::string created;   // RFC 3339 UTC
  std::string modified;  // RFC 3339 UTC
  std::string meta_json = "{}";
  bool enabled = true;
  bool prefer_low_latency = false;
  Recording recording;
  std::optional<gint64> delete_recording_after_days;
  std::optional<std::string> status;  // last status, null when never used
};

class Store {
 public:
  Store() = default;
  ~Store();
  Store(const Store &) = delete;
  Store &operator=(const Store &) = delete;

  // Opens (creating if needed) <dir>/live-inputs.sqlite3.
  bool open(const std::string &dir, GError **error);

  bool insert(const LiveInputRecord &r, GError **error);
  bool update(const LiveInputRecord &r, GError **error);  // by uid
  bool remove(const std::string &uid, GError **error);
  bool set_status(const std::string &uid, const std::optional<std::string> &status,
                  GError **error);

  std::optional<LiveInputRecord> get(const std::string &uid);
  std::optional<LiveInputRecord> get_by_secret(const std::string &secret);
  std::vector<LiveInputRecord> list();
  gint64 count();

 private:
  bool exec(const char *sql, GError **error);
  bool set_error(GError **error, const char *what);

  sqlite3 *db_ = nullptr;
};

// Now as RFC 3339 UTC with microseconds, as the hosted API writes it:
// "2024-05-01T12:00:00.123456Z".
std::string rfc3339_now();

}  // namespace server
