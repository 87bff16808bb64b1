// Runs what examples/ shows a user: the launch scripts and the embedding
// program, end to end on 127.0.0.1, counting decoded frames in the player.
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"

namespace {

std::string read_file(const std::string &path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

size_t count(const std::string &haystack, const std::string &needle) {
  size_t n = 0;
  for (size_t pos = haystack.find(needle); pos != std::string::npos;
       pos = haystack.find(needle, pos + needle.size()))
    n++;
  return n;
}

// A child process whose stdout+stderr go to a file; SIGINT then bounded
// wait at the end.
class Child {
 public:
  Child(const std::vector<std::string> &argv, const std::vector<std::pair<std::string, std::string>> &env,
        const std::string &log_path)
      : log_(log_path) {
    gobj::Ref<GSubprocessLauncher> l = gobj::adopt(g_subprocess_launcher_new(
        GSubprocessFlags(G_SUBPROCESS_FLAGS_STDERR_MERGE | G_SUBPROCESS_FLAGS_STDIN_INHERIT)));
    g_subprocess_launcher_set_stdout_file_path(l.get(), log_path.c_str());
    for (const auto &kv : env) g_subprocess_launcher_setenv(l.get(), kv.first.c_str(), kv.second.c_str(), TRUE);
    std::vector<const gchar *> args;
    for (const auto &a : argv) args.push_back(a.c_str());
    args.push_back(nullptr);
    gobj::Unique<GError> err;
    proc_ = gobj::adopt(g_subprocess_launcher_spawnv(l.get(), args.data(), gobj::out(err)));
    EXPECT_TRUE(proc_) << (err ? err->message : "spawn failed");
  }
  ~Child() { stop(); }
  std::string output() const { return read_file(log_); }
  // GSubprocess reaps the child on GLib's worker thread; the identifier
  // goes away once it has.
  bool running() const { return proc_ && g_subprocess_get_identifier(proc_.get()) != nullptr; }
  // SIGINT, wait up to 10 s, then SIGKILL. Returns the exit status (or -1).
  int stop() {
    if (!proc_) return -1;
    if (running()) g_subprocess_send_signal(proc_.get(), SIGINT);
    if (!test::wait_for([&] { return !running(); }, 10000)) {
      g_subprocess_force_exit(proc_.get());
      test::wait_for([&] { return !running(); }, 5000);
    }
    int status = -1;
    if (!running() && g_subprocess_get_if_exited(proc_.get()))
      status = g_subprocess_get_exit_status(proc_.get());
    proc_.reset();
    return status;
  }

 private:
  std::string log_;
  gobj::Ref<GSubprocess> proc_;
};

std::string env_or(const char *name) {
  const char *v = g_getenv(name);
  return v ? v : "";
}

class Examples : public ::testing::Test {
 protected:
  void SetUp() override {
    examples_ = env_or("WHIPWHEP_EXAMPLES_DIR");
    relay_bin_ = env_or("WHIPWHEP_EMBEDDED_RELAY");
    ASSERT_FALSE(examples_.empty());
    ASSERT_FALSE(relay_bin_.empty());
    gobj::Unique<GError> err;
    gchar *dir = g_dir_make_tmp("whipwhep-examples-XXXXXX", gobj::out(err));
    ASSERT_NE(dir, nullptr);
    tmp_ = dir;
    g_free(dir);
  }
  std::vector<std::pair<std::string, std::string>> env() const {
    return with_preload({{"ICE_ADDRESSES", "127.0.0.1"},
                         {"SIZE", "320x240"},
                         {"VIDEO_SINK", "fakesink name=vsink silent=false sync=false"},
                         {"AUDIO_SINK", "fakesink name=asink silent=false sync=false"},
                         {"GST_LAUNCH_FLAGS", "-v"}});
  }
  // Sanitizer builds (tests/meson.build): the launch scripts' system
  // gst-launch-1.0 needs the sanitizer runtime preloaded to load our plugin.
  static std::vector<std::pair<std::string, std::string>> with_preload(
      std::vector<std::pair<std::string, std::string>> env) {
    const std::string preload = env_or("WHIPWHEP_LAUNCH_PRELOAD");
    if (!preload.empty()) env.emplace_back("LD_PRELOAD", preload);
    return env;
  }
  // Publish with publish.sh, play with play.sh, until the player's video
  // sink has seen `frames` buffers. With `publishing`, the first player
  // starts only once it says the relay has the whole publisher.
  void publish_and_play(const std::string &whip, const std::string &whep, size_t frames,
                        const std::function<bool()> &publishing = nullptr) {
    Child pub({examples_ + "/launch/publish.sh", whip}, env(), tmp_ + "/publish.log");
    if (publishing) {
      ASSERT_TRUE(test::wait_for(publishing, 40000)) << "--- publish ---\n" << pub.output();
    }
    // A player that comes before the publisher is told 503 "no publisher
    // yet" and exits with an error: start it again, as a user would.
    std::unique_ptr<Child> play;
    int attempts = 0;
    std::string out;
    bool ok = test::wait_for(
        [&] {
          if (!play || !play->running()) {
            if (play) play->stop();
            play = std::make_unique<Child>(std::vector<std::string>{examples_ + "/launch/play.sh", whep},
                                           env(), tmp_ + "/play" + std::to_string(++attempts) + ".log");
          }
          out = play->output();
          return count(out, "vsink: last-message = chain") >= frames &&
                 count(out, "asink: last-message = chain") >= 10;
        },
        40000);
    EXPECT_TRUE(ok) << "video buffers " << count(out, "vsink: last-message = chain") << " after "
                    << attempts << " player starts\n--- play ---\n"
                    << out.substr(out.size() > 3000 ? out.size() - 3000 : 0) << "\n--- publish ---\n"
                    << pub.output();
    EXPECT_EQ(play->stop(), 0) << play->output().substr(0, 2000);
    EXPECT_EQ(pub.stop(), 0) << pub.output();
  }
  std::string examples_, relay_bin_, tmp_;
};

TEST_F(Examples, EmbeddedRelayCarriesLaunchScriptsPublishToPlay) {
  Child relay({relay_bin_, "--port", "0", "--ice-addresses", "127.0.0.1", "--seconds", "90"}, {},
              tmp_ + "/relay.log");
  guint port = 0;
  ASSERT_TRUE(test::wait_for(
      [&] { return sscanf(relay.output().c_str(), "ready %u", &port) == 1; }, 10000))
      << relay.output();
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  publish_and_play(base + "/whip", base + "/whep", 60);
  EXPECT_EQ(relay.stop(), 0) << relay.output();
}

TEST_F(Examples, StandaloneRelayScriptCarriesLaunchScriptsPublishToPlay) {
  guint in = test::free_tcp_port(), out = test::free_tcp_port();
  while (out == in) out = test::free_tcp_port();
  Child relay({examples_ + "/launch/standalone-relay.sh", std::to_string(in), std::to_string(out)},
              with_preload({{"ICE_ADDRESSES", "127.0.0.1"}, {"GST_LAUNCH_FLAGS", "-v"}}),
              tmp_ + "/standalone.log");
  // The listeners are up once gst-launch reports PLAYING.
  ASSERT_TRUE(test::wait_for([&] { return relay.output().find("Setting pipeline to PLAYING") !=
                                          std::string::npos; },
                             10000))
      << relay.output();
  // The player starts once whipserversrc reports "publishing" (every stream
  // of the publisher has its pad; printed by gst-launch -v). Without that, a
  // player whose WHEP POST arrives between the publisher's video and audio
  // pads (~0.1 s apart) is answered by whepserversink with the missing
  // stream inactive, for good: whepserversink alone knows only the inputs it
  // already has. embedded-relay.cpp and whipwhep-server gate viewers on
  // "publishing"; a bare gst-launch pipeline cannot.
  publish_and_play("http://127.0.0.1:" + std::to_string(in) + "/whip",
                   "http://127.0.0.1:" + std::to_string(out) + "/whep", 60, [&] {
                     return relay.output().find(":in: publishing = true") != std::string::npos;
                   });
  EXPECT_EQ(relay.stop(), 0) << relay.output();
}

}  // namespace
