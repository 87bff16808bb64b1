#include "server-process.h"

#include <glib/gstdio.h>
#include <signal.h>

#include <cstdlib>
#include <cstring>

#include "harness.h"

#ifndef WHIPWHEP_SERVER_PATH
#error "tests/server/meson.build passes the server binary's path"
#endif

namespace test {

TempDir::TempDir() {
  g_autofree gchar *dir = g_dir_make_tmp("whipwhep-server-test-XXXXXX", nullptr);
  path_ = dir ? dir : "";
}

static void remove_tree(const std::string &path) {
  GDir *dir = g_dir_open(path.c_str(), 0, nullptr);
  if (dir) {
    while (const gchar *name = g_dir_read_name(dir)) {
      g_autofree gchar *child = g_build_filename(path.c_str(), name, nullptr);
      if (g_file_test(child, G_FILE_TEST_IS_DIR) && !g_file_test(child, G_FILE_TEST_IS_SYMLINK))
        remove_tree(child);
      else
        g_unlink(child);
    }
    g_dir_close(dir);
  }
  g_rmdir(path.c_str());
}

TempDir::~TempDir() {
  if (!path_.empty()) remove_tree(path_);
}

std::string TempDir::file(const char *name) const {
  g_autofree gchar *p = g_build_filename(path_.c_str(), name, nullptr);
  return p;
}

ServerProcess::ServerProcess(std::string data_dir) : data_dir_(std::move(data_dir)) {}

ServerProcess::~ServerProcess() { kill(); }

bool ServerProcess::running() const { return proc_ && !reader_->exited; }

int ServerProcess::pid() const {
  const gchar *id = proc_ ? g_subprocess_get_identifier(proc_.get()) : nullptr;
  return id ? atoi(id) : 0;
}

void ServerProcess::read_next_line(const std::shared_ptr<Reader> &reader) {
  g_data_input_stream_read_line_async(
      reader->stream.get(), G_PRIORITY_DEFAULT, nullptr,
      +[](GObject *stream, GAsyncResult *res, gpointer data) {
        std::unique_ptr<std::weak_ptr<Reader>> weak(static_cast<std::weak_ptr<Reader> *>(data));
        gsize len = 0;
        g_autofree gchar *line = g_data_input_stream_read_line_finish(
            G_DATA_INPUT_STREAM(stream), res, &len, nullptr);
        auto reader = weak->lock();
        if (!reader) return;
        if (!line) {
          reader->eof = true;
          return;
        }
        reader->output += line;
        reader->output += '\n';
        read_next_line(reader);
      },
      new std::weak_ptr<Reader>(reader));
}

bool ServerProcess::wait_output(const std::string &needle, guint timeout_ms) {
  return wait_for([&] { return reader_->output.find(needle) != std::string::npos; }, timeout_ms);
}

bool ServerProcess::start(const std::vector<std::string> &args,
                          const std::map<std::string, std::string> &env, guint timeout_ms) {
  kill();
  reader_ = std::make_shared<Reader>();
  g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new(
      GSubprocessFlags(G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_MERGE));
  // Loopback only, whatever the caller's environment says; no token from
  // the caller's environment unless the test gives one.
  g_subprocess_launcher_setenv(launcher, "WHIPWHEP_ICE_ADDRESSES", "127.0.0.1", TRUE);
  g_subprocess_launcher_unsetenv(launcher, "WHIPWHEP_API_TOKEN");
  for (const auto &kv : env) {
    if (kv.second.empty())
      g_subprocess_launcher_unsetenv(launcher, kv.first.c_str());
    else
      g_subprocess_launcher_setenv(launcher, kv.first.c_str(), kv.second.c_str(), TRUE);
  }
  // For profiling the server alone (e.g. heaptrack's preload library):
  // WHIPWHEP_TEST_SERVER_ENV_X=v sets X=v for the server, not for the test.
  {
    g_auto(GStrv) environ_copy = g_get_environ();
    const std::string prefix = "WHIPWHEP_TEST_SERVER_ENV_";
    for (char **e = environ_copy; e && *e; e++) {
      const std::string kv = *e;
      const size_t eq = kv.find('=');
      if (kv.compare(0, prefix.size(), prefix) == 0 && eq != std::string::npos)
        g_subprocess_launcher_setenv(launcher, kv.substr(prefix.size(), eq - prefix.size()).c_str(),
                                     kv.substr(eq + 1).c_str(), TRUE);
    }
  }
  std::vector<const char *> argv = {WHIPWHEP_SERVER_PATH, "--listen", "127.0.0.1:0",
                                    "--data-dir", data_dir_.c_str()};
  for (const auto &a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  g_autoptr(GError) err = nullptr;
  proc_ = gobj::adopt(g_subprocess_launcher_spawnv(launcher, argv.data(), &err));
  if (!proc_) {
    reader_->output = std::string("spawn failed: ") + err->message;
    return false;
  }
  reader_->stream =
      gobj::adopt(g_data_input_stream_new(g_subprocess_get_stdout_pipe(proc_.get())));
  read_next_line(reader_);
  g_subprocess_wait_async(
      proc_.get(), nullptr,
      +[](GObject *, GAsyncResult *, gpointer data) {
        std::unique_ptr<std::weak_ptr<Reader>> weak(static_cast<std::weak_ptr<Reader> *>(data));
        if (auto reader = weak->lock()) reader->exited = true;
      },
      new std::weak_ptr<Reader>(reader_));
  const std::string &text = reader_->output;

  // The ready line: "whipwhep-server X ready: API <base>/client/v4/accounts/<id>/stream ..."
  const bool ready = wait_for(
      [&] { return text.find(" ready: API ") != std::string::npos || reader_->eof; },
      timeout_ms);
  const auto at = text.find(" ready: API ");
  if (!ready || at == std::string::npos) return false;
  // "... ready: API <public>/client/v4/accounts/<id>/stream (WHIP/WHEP on <public>,
  // account <id>, listening on http://127.0.0.1:PORT)": requests go to the
  // listening address, whatever public URL the server was given.
  const auto start = at + strlen(" ready: API ");
  const std::string public_api = text.substr(start, text.find(' ', start) - start);
  const auto client = public_api.find("/client/v4/accounts/");
  public_url = public_api.substr(0, client);
  const auto id_start = client + strlen("/client/v4/accounts/");
  account_id = public_api.substr(id_start, public_api.find('/', id_start) - id_start);
  const auto listening = text.find("listening on ", start);
  if (listening == std::string::npos) return false;
  const auto url_start = listening + strlen("listening on ");
  base_url = text.substr(url_start, text.find(')', url_start) - url_start);
  api_base = base_url + public_api.substr(client);
  return true;
}

int ServerProcess::wait_exit(guint timeout_ms) {
  if (!proc_) return -1;
  auto reader = reader_;
  if (!wait_for([&] { return reader->exited; }, timeout_ms)) return -1;
  // Collect the rest of its output.
  wait_for([&] { return reader->eof; }, 2000);
  if (g_subprocess_get_if_signaled(proc_.get())) return -2;
  return g_subprocess_get_exit_status(proc_.get());
}

int ServerProcess::terminate(guint timeout_ms) {
  if (!running()) return proc_ ? wait_exit(timeout_ms) : -1;
  g_subprocess_send_signal(proc_.get(), SIGTERM);
  return wait_exit(timeout_ms);
}

void ServerProcess::kill() {
  if (proc_ && running()) {
    g_subprocess_force_exit(proc_.get());
    g_subprocess_wait(proc_.get(), nullptr, nullptr);
  }
  proc_.reset();
}

std::string HttpReply::header(const std::string &lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

JsonObject *HttpReply::object() const {
  return json && JSON_NODE_HOLDS_OBJECT(json.get()) ? json_node_get_object(json.get()) : nullptr;
}

JsonObject *HttpReply::result() const {
  JsonObject *o = object();
  if (!o || !json_object_has_member(o, "result")) return nullptr;
  JsonNode *r = json_object_get_member(o, "result");
  return JSON_NODE_HOLDS_OBJECT(r) ? json_node_get_object(r) : nullptr;
}

HttpReply http(const std::string &method, const std::string &url, const std::string &token,
               const std::string &content_type, const std::string &body,
               const std::map<std::string, std::string> &headers) {
  HttpReply reply;
  g_autoptr(SoupSession) session = soup_session_new_with_options("timeout", 15, nullptr);
  g_autoptr(SoupMessage) msg = soup_message_new(method.c_str(), url.c_str());
  if (!msg) return reply;
  SoupMessageHeaders *rh = soup_message_get_request_headers(msg);
  if (!token.empty())
    soup_message_headers_replace(rh, "Authorization", ("Bearer " + token).c_str());
  for (const auto &kv : headers) soup_message_headers_replace(rh, kv.first.c_str(), kv.second.c_str());
  if (!content_type.empty() || !body.empty()) {
    g_autoptr(GBytes) b = g_bytes_new(body.data(), body.size());
    soup_message_set_request_body_from_bytes(msg, content_type.empty() ? nullptr : content_type.c_str(), b);
  }
  g_autoptr(GError) err = nullptr;
  g_autoptr(GBytes) bytes = soup_session_send_and_read(session, msg, nullptr, &err);
  reply.status = soup_message_get_status(msg);
  if (err) reply.error = err->message;
  if (bytes) {
    gsize size = 0;
    const auto *data = static_cast<const char *>(g_bytes_get_data(bytes, &size));
    reply.body.assign(data ? data : "", size);
  }
  SoupMessageHeadersIter iter;
  const char *name, *value;
  soup_message_headers_iter_init(&iter, soup_message_get_response_headers(msg));
  while (soup_message_headers_iter_next(&iter, &name, &value)) {
    g_autofree gchar *lower = g_ascii_strdown(name, -1);
    std::string &slot = reply.headers[lower];
    slot += (slot.empty() ? "" : "\n") + std::string(value);
  }
  const char *ct = soup_message_headers_get_content_type(soup_message_get_response_headers(msg), nullptr);
  reply.content_type = ct ? ct : "";
  if (reply.content_type == "application/json") {
    JsonNode *n = json_from_string(reply.body.c_str(), nullptr);
    reply.json = gobj::adopt(n);
  }
  return reply;
}

std::string raw_http(const std::string &base_url, const std::string &request_bytes,
                     guint timeout_ms) {
  g_autoptr(GUri) uri = g_uri_parse(base_url.c_str(), G_URI_FLAGS_NONE, nullptr);
  if (!uri) return {};
  g_autoptr(GSocketClient) client = g_socket_client_new();
  g_socket_client_set_timeout(client, (timeout_ms + 999) / 1000);
  g_autoptr(GSocketConnection) conn = g_socket_client_connect_to_host(
      client, g_uri_get_host(uri), static_cast<guint16>(g_uri_get_port(uri)), nullptr, nullptr);
  if (!conn) return {};
  GOutputStream *out = g_io_stream_get_output_stream(G_IO_STREAM(conn));
  // A server may answer (and close) before all is written: that is fine.
  g_output_stream_write_all(out, request_bytes.data(), request_bytes.size(), nullptr, nullptr,
                            nullptr);
  GInputStream *in = g_io_stream_get_input_stream(G_IO_STREAM(conn));
  std::string response;
  char buf[4096];
  for (;;) {
    gssize n = g_input_stream_read(in, buf, sizeof buf, nullptr, nullptr);
    if (n <= 0) break;
    response.append(buf, static_cast<size_t>(n));
    // One response is enough: stop at the end of its body.
    const auto end = response.find("\r\n\r\n");
    if (end != std::string::npos) {
      const auto cl = response.find("Content-Length: ");
      if (cl != std::string::npos && cl < end) {
        const size_t len = std::stoul(response.substr(cl + 16));
        if (response.size() >= end + 4 + len) break;
      }
    }
  }
  return response;
}

}  // namespace test
