#include "store.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <sqlite3.h>

#include <memory>

namespace server {

namespace {

// Rows are read through one column order everywhere.
constexpr const char *kColumns =
    "uid, secret, created, modified, meta, enabled, prefer_low_latency, rec_mode, "
    "rec_timeout_seconds, rec_require_signed_urls, rec_allowed_origins, "
    "delete_recording_after_days, status";

struct StmtDeleter {
  void operator()(sqlite3_stmt *s) const { sqlite3_finalize(s); }
};
using Stmt = std::unique_ptr<sqlite3_stmt, StmtDeleter>;

std::string column_text(sqlite3_stmt *s, int i) {
  const unsigned char *t = sqlite3_column_text(s, i);
  return t ? reinterpret_cast<const char *>(t) : "";
}

// allowedOrigins is stored as a newline-separated list (origins hold no
// newlines), NULL when unset.
std::optional<std::vector<std::string>> origins_from_column(sqlite3_stmt *s, int i) {
  if (sqlite3_column_type(s, i) == SQLITE_NULL) return std::nullopt;
  std::vector<std::string> out;
  g_auto(GStrv) parts = g_strsplit(column_text(s, i).c_str(), "\n", -1);
  for (char **p = parts; p && *p; p++)
    if (**p) out.emplace_back(*p);
  return out;
}

LiveInputRecord row_to_record(sqlite3_stmt *s) {
  LiveInputRecord r;
  r.uid = column_text(s, 0);
  r.secret = column_text(s, 1);
  r.created = column_text(s, 2);
  r.modified = column_text(s, 3);
  r.meta_json = column_text(s, 4);
  r.enabled = sqlite3_column_int(s, 5) != 0;
  r.prefer_low_latency = sqlite3_column_int(s, 6) != 0;
  r.recording.mode = column_text(s, 7);
  r.recording.timeout_seconds = sqlite3_column_int64(s, 8);
  r.recording.require_signed_urls = sqlite3_column_int(s, 9) != 0;
  r.recording.allowed_origins = origins_from_column(s, 10);
  if (sqlite3_column_type(s, 11) != SQLITE_NULL)
    r.delete_recording_after_days = sqlite3_column_int64(s, 11);
  if (sqlite3_column_type(s, 12) != SQLITE_NULL) r.status = column_text(s, 12);
  return r;
}

void bind_text(sqlite3_stmt *s, int i, const std::string &v) {
  sqlite3_bind_text(s, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

// Binds the 13 columns in kColumns order starting at parameter 1.
void bind_record(sqlite3_stmt *s, const LiveInputRecord &r) {
  bind_text(s, 1, r.uid);
  bind_text(s, 2, r.secret);
  bind_text(s, 3, r.created);
  bind_text(s, 4, r.modified);
  bind_text(s, 5, r.meta_json);
  sqlite3_bind_int(s, 6, r.enabled);
  sqlite3_bind_int(s, 7, r.prefer_low_latency);
  bind_text(s, 8, r.recording.mode);
  sqlite3_bind_int64(s, 9, r.recording.timeout_seconds);
  sqlite3_bind_int(s, 10, r.recording.require_signed_urls);
  if (r.recording.allowed_origins) {
    std::string joined;
    for (const auto &o : *r.recording.allowed_origins) joined += o + "\n";
    bind_text(s, 11, joined);
  } else {
    sqlite3_bind_null(s, 11);
  }
  if (r.delete_recording_after_days)
    sqlite3_bind_int64(s, 12, *r.delete_recording_after_days);
  else
    sqlite3_bind_null(s, 12);
  if (r.status)
    bind_text(s, 13, *r.status);
  else
    sqlite3_bind_null(s, 13);
}

}  // namespace

std::string rfc3339_now() {
  g_autoptr(GDateTime) now = g_date_time_new_now_utc();
  g_autofree gchar *s = g_date_time_format(now, "%Y-%m-%dT%H:%M:%S.%fZ");
  return s;
}

Store::~Store() {
  if (db_) sqlite3_close_v2(db_);
}

bool Store::set_error(GError **error, const char *what) {
  g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "live-input database: %s: %s", what,
              db_ ? sqlite3_errmsg(db_) : "not open");
  return false;
}

bool Store::exec(const char *sql, GError **error) {
  char *msg = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "live-input database: %s",
                msg ? msg : "error");
    sqlite3_free(msg);
    return false;
  }
  return true;
}

bool Store::open(const std::string &dir, GError **error) {
  if (g_mkdir_with_parents(dir.c_str(), 0700) != 0) {
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno),
                "cannot create data dir %s: %s", dir.c_str(), g_strerror(errno));
    return false;
  }
  g_autofree gchar *path = g_build_filename(dir.c_str(), "live-inputs.sqlite3", nullptr);
  if (sqlite3_open_v2(path, &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK)
    return set_error(error, path);
  sqlite3_busy_timeout(db_, 5000);
  // WAL + FULL: a committed transaction is on disk before we answer, so a
  // SIGKILL (or power loss) never loses an input the client was told exists.
  return exec("PRAGMA journal_mode=WAL;"
              "PRAGMA synchronous=FULL;"
              "CREATE TABLE IF NOT EXISTS live_inputs ("
              "  uid TEXT PRIMARY KEY NOT NULL,"
              "  secret TEXT UNIQUE NOT NULL,"
              "  created TEXT NOT NULL,"
              "  modified TEXT NOT NULL,"
              "  meta TEXT NOT NULL,"
              "  enabled INTEGER NOT NULL,"
              "  prefer_low_latency INTEGER NOT NULL,"
              "  rec_mode TEXT NOT NULL,"
              "  rec_timeout_seconds INTEGER NOT NULL,"
              "  rec_require_signed_urls INTEGER NOT NULL,"
              "  rec_allowed_origins TEXT,"
              "  delete_recording_after_days INTEGER,"
              "  status TEXT);",
              error);
}

bool Store::insert(const LiveInputRecord &r, GError **error) {
  g_autofree gchar *sql =
      g_strdup_printf("INSERT INTO live_inputs (%s) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", kColumns);
  sqlite3_stmt *raw = nullptr;
  if (sqlite3_prepare_v2(db_, sql, -1, &raw, nullptr) != SQLITE_OK)
    return set_error(error, "insert");
  Stmt s(raw);
  bind_record(s.get(), r);
  // A single statement is its own transaction in autocommit mode.
  if (sqlite3_step(s.get()) != SQLITE_DONE) return set_error(error, "insert");
  return true;
}

bool Store::update(const LiveInputRecord &r, GError **error) {
  sqlite3_stmt *raw = nullptr;
  if (sqlite3_prepare_v2(db_,
                         "UPDATE live_inputs SET secret=?2, created=?3, modified=?4, meta=?5, "
                         "enabled=?6, prefer_low_latency=?7, rec_mode=?8, "
                         "rec_timeout_seconds=?9, rec_require_signed_urls=?10, "
                         "rec_allowed_origins=?11, delete_recording_after_days=?12, status=?13 "
                         "WHERE uid=?1",
                         -1, &raw, nullptr) != SQLITE_OK)
    return set_error(error, "update");
  Stmt s(raw);
  bind_record(s.get(), r);
  if (sqlite3_step(s.get()) != SQLITE_DONE) return set_error(error, "update");
  return true;
}

bool Store::remove(const std::string &uid, GError **error) {
  sqlite3_stmt *raw = nullptr;
  if (sqlite3_prepare_v2(db_, "DELETE FROM live_inputs WHERE uid=?1", -1, &raw, nullptr) !=
      SQLITE_OK)
    return set_error(error, "delete");
  Stmt s(raw);
  bind_text(s.get(), 1, uid);
  if (sqlite3_step(s.get()) != SQLITE_DONE) return set_error(error, "delete");
  return true;
}

bool Store::set_status(const std::string &uid, const std::optional<std::string> &status,
                       GError **error) {
  sqlite3_stmt *raw = nullptr;
  if (sqlite3_prepare_v2(db_, "UPDATE live_inputs SET status=?2 WHERE uid=?1", -1, &raw,
                         nullptr) != SQLITE_OK)
    return set_error(error, "status");
  Stmt s(raw);
  bind_text(s.get(), 1, uid);
  if (status)
    bind_text(s.get(), 2, *status);
  else
    sqlite3_bind_null(s.get(), 2);
  if (sqlite3_step(s.get()) != SQLITE_DONE) return set_error(error, "status");
  return true;
}

static std::optional<LiveInputRecord> get_one(sqlite3 *db, const char *where,
                                              const std::string &key) {
  g_autofree gchar *sql = g_strdup_printf("SELECT %s FROM live_inputs WHERE %s", kColumns, where);
  sqlite3_stmt *raw = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &raw, nullptr) != SQLITE_OK) return std::nullopt;
  Stmt s(raw);
  bind_text(s.get(), 1, key);
  if (sqlite3_step(s.get()) != SQLITE_ROW) return std::nullopt;
  return row_to_record(s.get());
}

std::optional<LiveInputRecord> Store::get(const std::string &uid) {
  return get_one(db_, "uid=?1", uid);
}

std::optional<LiveInputRecord> Store::get_by_secret(const std::string &secret) {
  return get_one(db_, "secret=?1", secret);
}

std::vector<LiveInputRecord> Store::list() {
  std::vector<LiveInputRecord> out;
  g_autofree gchar *sql =
      g_strdup_printf("SELECT %s FROM live_inputs ORDER BY created, uid", kColumns);
  sqlite3_stmt *raw = nullptr;
  if (sqlite3_prepare_v2(db_, sql, -1, &raw, nullptr) != SQLITE_OK) return out;
  Stmt s(raw);
  while (sqlite3_step(s.get()) == SQLITE_ROW) out.push_back(row_to_record(s.get()));
  return out;
}

gint64 Store::count() {
  sqlite3_stmt *raw = nullptr;
  if (sqlite3_prepare_v2(db_, "SELECT COUNT(*) FROM live_inputs", -1, &raw, nullptr) != SQLITE_OK)
    return 0;
  Stmt s(raw);
  return sqlite3_step(s.get()) == SQLITE_ROW ? sqlite3_column_int64(s.get(), 0) : 0;
}

}  // namespace server
