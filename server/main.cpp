// whipwhep-server: command line, configuration, main loop. Nothing else.
#include <gio/gio.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <gst/gst.h>

#include <cstdio>
#include <string>

#include "common/gslice-malloc.h"
#include "common/http-types.h"
#include "common/ice.h"
#include "config.h"
#include "http-api.h"
#include "live-inputs.h"
#include "memory-trim.h"
#include "store.h"

namespace {

struct Options {
  gchar *config = nullptr;
  gchar *listen = nullptr;
  gchar *public_url = nullptr;
  gchar *data_dir = nullptr;
  gchar *account_id = nullptr;
  gchar *api_token = nullptr;
  gchar *ice_addresses = nullptr;
  gboolean version = FALSE;

  ~Options() {
    for (gchar *s : {config, listen, public_url, data_dir, account_id, api_token, ice_addresses})
      g_free(s);
  }
};

int fail(const std::string &what) {
  g_printerr("whipwhep-server: %s\n", what.c_str());
  return 1;
}

// Reads <dir>/<name> or, if missing, stores a new random value there
// (mode 0600: it may be a credential). `created` tells which happened.
bool load_or_create(const std::string &dir, const char *name, std::string *value, bool *created,
                    GError **error) {
  g_autofree gchar *path = g_build_filename(dir.c_str(), name, nullptr);
  gchar *contents = nullptr;
  if (g_file_get_contents(path, &contents, nullptr, nullptr)) {
    gobj::Unique<gchar> owned(contents);
    *value = g_strstrip(owned.get());
    *created = false;
    if (!value->empty()) return true;
  }
  *value = whipwhep::random_id_hex128() + whipwhep::random_id_hex128();
  if (std::string(name) == "account-id") value->resize(32);
  const std::string text = *value + "\n";
  // g_file_set_contents_full writes a temp file, fsyncs and renames: a
  // crash leaves the old file or the new one, never half of it.
  if (!g_file_set_contents_full(path, text.c_str(), static_cast<gssize>(text.size()),
                                G_FILE_SET_CONTENTS_CONSISTENT, 0600, error))
    return false;
  *created = true;
  return true;
}

std::string shell_quote(const std::string &s) {
  g_autofree gchar *q = g_shell_quote(s.c_str());
  return q;
}

void print_ready(const server::Config &config, const std::string &bound_url,
                 const std::string &api_base,
                 const std::string &account_id, const std::string &token_display,
                 const std::string &token_for_curl) {
  const std::string inputs = api_base + "/live_inputs";
  g_print("whipwhep-server " WHIPWHEP_VERSION "\n");
  g_print("  account id: %s\n", account_id.c_str());
  g_print("  API token:  %s\n", token_display.c_str());
  g_print("  create a live input:\n"
          "    curl -s -X POST -H \"Authorization: Bearer %s\" -H 'Content-Type: "
          "application/json' -d '{\"meta\":{\"name\":\"my stream\"}}' %s\n",
          token_for_curl.c_str(), shell_quote(inputs).c_str());
  g_print("  publish to its result.webRTC.url (WHIP):\n"
          "    gst-launch-1.0 videotestsrc is-live=true ! whipsink name=whip "
          "whip-endpoint=WEBRTC_URL audiotestsrc is-live=true ! whip.\n");
  g_print("  play from its result.webRTCPlayback.url (WHEP):\n"
          "    gst-launch-1.0 whepsrc name=whep whep-endpoint=WEBRTC_PLAYBACK_URL whep.video_0 ! "
          "videoconvert ! autovideosink whep.audio_0 ! audioconvert ! autoaudiosink\n");
  // Last, so that whoever waits for it has everything above too.
  g_print("whipwhep-server ready: API %s (WHIP/WHEP on %s, account %s, listening on %s)\n",
          api_base.c_str(), config.public_url.c_str(), account_id.c_str(), bound_url.c_str());
  fflush(stdout);
}

}  // namespace

int main(int argc, char **argv) {
  whipwhep::reexec_with_gslice_on_malloc(argv);  // before any thread: see gslice-malloc.h
  Options opt;
  const GOptionEntry entries[] = {
      {"config", 0, 0, G_OPTION_ARG_FILENAME, &opt.config,
       "Configuration file (GLib key file; see whipwhep-server.conf)", "FILE"},
      {"listen", 0, 0, G_OPTION_ARG_STRING, &opt.listen,
       "Address and port to listen on (default 127.0.0.1:8080)", "ADDR:PORT"},
      {"public-url", 0, 0, G_OPTION_ARG_STRING, &opt.public_url,
       "Base URL clients reach the server at (default http://<listen>)", "URL"},
      {"data-dir", 0, 0, G_OPTION_ARG_FILENAME, &opt.data_dir,
       "Directory for the live-input database and generated credentials "
       "(default ./whipwhep-data)",
       "DIR"},
      {"account-id", 0, 0, G_OPTION_ARG_STRING, &opt.account_id,
       "Account id in API paths (default: generated once and stored)", "ID"},
      {"api-token", 0, 0, G_OPTION_ARG_STRING, &opt.api_token,
       "API token (default: $WHIPWHEP_API_TOKEN, else generated once and stored)", "TOKEN"},
      {"ice-addresses", 0, 0, G_OPTION_ARG_STRING, &opt.ice_addresses,
       "Local addresses ICE may use (default: $WHIPWHEP_ICE_ADDRESSES, else all)", "A[,B...]"},
      {"version", 0, 0, G_OPTION_ARG_NONE, &opt.version, "Print the version and exit", nullptr},
      {nullptr, 0, 0, G_OPTION_ARG_NONE, nullptr, nullptr, nullptr}};

  g_autoptr(GOptionContext) ctx = g_option_context_new("- WHIP/WHEP live-input server");
  g_option_context_set_summary(ctx,
                               "Serves a Cloudflare Stream compatible live-input API and WHIP "
                               "publishing / WHEP playback on one HTTP port.");
  g_option_context_add_main_entries(ctx, entries, nullptr);
  g_option_context_add_group(ctx, gst_init_get_option_group());
  g_autoptr(GError) err = nullptr;
  if (!g_option_context_parse(ctx, &argc, &argv, &err)) return fail(err->message);
  if (opt.version) {
    g_print("whipwhep-server %s\n", WHIPWHEP_VERSION);
    return 0;
  }
  gst_init(&argc, &argv);

  // Defaults (the embedded example file), then --config, then flags/env.
  server::Config config;
  if (!server::load_config_data(server::embedded_default_config(), "built-in configuration",
                                &config, &err))
    return fail(err->message);
  if (opt.config && !server::load_config_file(opt.config, &config, &err))
    return fail(err->message);
  if (opt.listen && !server::parse_listen(opt.listen, &config.listen_host, &config.listen_port, &err))
    return fail(err->message);
  if (opt.public_url) config.public_url = opt.public_url;
  while (!config.public_url.empty() && config.public_url.back() == '/')
    config.public_url.pop_back();
  if (opt.data_dir) config.data_dir = opt.data_dir;
  if (opt.account_id) config.account_id = opt.account_id;
  const char *env_ice = g_getenv("WHIPWHEP_ICE_ADDRESSES");
  if (opt.ice_addresses)
    config.ice_addresses = opt.ice_addresses;
  else if (env_ice)
    config.ice_addresses = env_ice;

  if (!server::validate_pipeline_template(config.pipeline_template, config.data_dir, &err))
    return fail(err->message);

  server::Store store;
  if (!store.open(config.data_dir, &err)) return fail(err->message);
  // Where templates are told to record (@DATA_DIR@/recordings/@UID@.mkv).
  g_autofree gchar *recordings = g_build_filename(config.data_dir.c_str(), "recordings", nullptr);
  g_mkdir_with_parents(recordings, 0700);

  bool created = false;
  if (config.account_id.empty() &&
      !load_or_create(config.data_dir, "account-id", &config.account_id, &created, &err))
    return fail(err->message);
  if (!server::is_id(config.account_id) &&
      config.account_id.find_first_of("/?#% ") != std::string::npos)
    return fail("the account id may not contain '/', '?', '#', '%' or spaces");

  // The token: --api-token, else $WHIPWHEP_API_TOKEN, else the config file,
  // else the stored (or newly generated) one. Never logged; printed in full
  // only when it was just generated.
  std::vector<std::string> tokens;
  std::string token_display, token_for_curl;
  const char *env_token = g_getenv("WHIPWHEP_API_TOKEN");
  if (opt.api_token && *opt.api_token) {
    tokens = {opt.api_token};
    token_display = "(from --api-token)";
    token_for_curl = "<your API token>";
  } else if (env_token && *env_token) {
    tokens = {env_token};
    token_display = "(from $WHIPWHEP_API_TOKEN)";
    token_for_curl = "$WHIPWHEP_API_TOKEN";
  } else if (!config.api_tokens.empty()) {
    tokens = config.api_tokens;
    token_display = "(from the configuration file)";
    token_for_curl = "<your API token>";
  } else {
    std::string token;
    if (!load_or_create(config.data_dir, "api-token", &token, &created, &err))
      return fail(err->message);
    tokens = {token};
    g_autofree gchar *path = g_build_filename(config.data_dir.c_str(), "api-token", nullptr);
    if (created) {
      token_display = token + "  (generated now, stored in " + std::string(path) +
                      "; it is not shown again)";
      token_for_curl = token;
    } else {
      token_display = std::string("(stored in ") + path + ")";
      token_for_curl = "$(cat " + shell_quote(path) + ")";
    }
  }

  g_autoptr(GMainLoop) loop = g_main_loop_new(nullptr, FALSE);
  {
    server::LiveInputs inputs(config, store);
    server::HttpApi api(config, tokens, config.account_id, inputs);
    server::MemoryTrim memory_trim;
    if (!api.listen(&err)) return fail(std::string("cannot listen: ") + err->message);
    if (config.public_url.empty()) config.public_url = api.bound_url();

    auto quit = +[](gpointer data) -> gboolean {
      g_main_loop_quit(static_cast<GMainLoop *>(data));
      return G_SOURCE_CONTINUE;  // removed below, once, by its id
    };
    const guint sigint = g_unix_signal_add(SIGINT, quit, loop);
    const guint sigterm = g_unix_signal_add(SIGTERM, quit, loop);

    print_ready(config, api.bound_url(), config.public_url + api.api_base_path(), config.account_id,
                token_display, token_for_curl);
    g_main_loop_run(loop);

    g_source_remove(sigint);
    g_source_remove(sigterm);
    g_print("whipwhep-server: stopping: ending every session\n");
    // Stop taking requests, then end every session and set every pipeline
    // to NULL (which finalises recordings) before the store closes.
    api.disconnect();
    inputs.shutdown();
  }
  g_print("whipwhep-server: stopped\n");
  return 0;
}
