// Faults against the real whipwhep-server, bounded and on loopback only:
// a publisher process SIGKILLed mid-stream (the input leaves "connected",
// the viewer stays and gets media again from the next publisher without
// reconnecting); viewer processes SIGKILLed (liveViewers back to 0, the
// server's fds and threads back to where they were); and a soak of viewers
// joining and leaving (RSS, fds and threads back to their baseline).
//
// Publishers and viewers that get killed run as child gst-launch-1.0
// processes with our plugin (GST_PLUGIN_PATH_1_0 from the test environment).
// WHIPWHEP_SOAK_SESSIONS / WHIPWHEP_SOAK_CONCURRENCY / WHIPWHEP_SOAK_WARMUP
// size the soak (default 2000 sessions, 50 at a time, the first half as
// warm-up) for longer manual runs.
#include <gtest/gtest.h>
#include <json-glib/json-glib.h>
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <vector>

#include "api-helpers.h"
#include "harness.h"
#include "client-pipeline.h"
#include "server-process.h"

using namespace test;

namespace {


const char *kVideo = "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,"
                     "framerate=15/1";

std::string publisher_launch(const std::string &url) {
  return std::string(kVideo) + " ! whipsink name=whip ice-addresses=127.0.0.1 whip-endpoint=" +
         url;
}

std::string decoding_viewer(const std::string &url) {
  return "whepsrc name=whep ice-addresses=127.0.0.1 whep-endpoint=" + url +
         " ! decodebin ! videoconvert ! video/x-raw ! fakesink name=out sync=false";
}

// Lean viewer for the soak: whatever whepsrc outputs, not decoded.
std::string lean_viewer(const std::string &url) {
  return "whepsrc name=whep ice-addresses=127.0.0.1 whep-endpoint=" + url +
         " ! fakesink name=out sync=false async=false";
}

// gst-launch-1.0 in a child process (so that it can be SIGKILLed), output
// discarded. The environment (our plugin path, registry) is inherited.
class ChildPipeline {
 public:
  explicit ChildPipeline(const std::string &description) {
    g_autoptr(GError) err = nullptr;
    g_auto(GStrv) args = nullptr;
    const std::string cmd = "gst-launch-1.0 -q " + description;
    if (!g_shell_parse_argv(cmd.c_str(), nullptr, &args, &err)) {
      ADD_FAILURE() << err->message;
      return;
    }
    gobj::Ref<GSubprocessLauncher> launcher = gobj::adopt(g_subprocess_launcher_new(
        GSubprocessFlags(G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_SILENCE)));
    // Sanitizer builds (tests/meson.build): the system gst-launch-1.0 needs
    // the sanitizer runtime preloaded to load the instrumented plugin.
    if (const char *preload = g_getenv("WHIPWHEP_LAUNCH_PRELOAD"))
      g_subprocess_launcher_setenv(launcher.get(), "LD_PRELOAD", preload, TRUE);
    proc_ = gobj::adopt(g_subprocess_launcher_spawnv(launcher.get(), args, &err));
    if (!proc_) ADD_FAILURE() << "cannot start gst-launch-1.0: " << err->message;
  }
  ~ChildPipeline() { kill(); }
  bool started() const { return proc_ != nullptr; }
  void kill() {
    if (!proc_) return;
    g_subprocess_send_signal(proc_.get(), SIGKILL);
    g_subprocess_wait(proc_.get(), nullptr, nullptr);
    proc_.reset();
  }

 private:
  gobj::Ref<GSubprocess> proc_;
};

// What /proc says about a process.
struct Usage {
  long fds = -1, threads = -1, rss_kib = -1;
};

long count_dir(const std::string &path) {
  GDir *dir = g_dir_open(path.c_str(), 0, nullptr);
  if (!dir) return -1;
  long n = 0;
  while (g_dir_read_name(dir)) n++;
  g_dir_close(dir);
  return n;
}

Usage usage_of(int pid) {
  Usage u;
  const std::string base = "/proc/" + std::to_string(pid);
  u.fds = count_dir(base + "/fd");
  u.threads = count_dir(base + "/task");
  std::ifstream status(base + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) u.rss_kib = std::atol(line.c_str() + 6);
  return u;
}

// The process's usage once its RSS has held within 1 % for 3 s (at most
// 15 s): the server returns freed memory to the system every 2 s
// (server/memory-trim.h), so a reading taken between two of those says more
// about the timer than about the memory in use.
Usage settled_usage(int pid) {
  std::vector<std::pair<gint64, long>> seen;  // (time, RSS)
  Usage u;
  wait_for([&] {
    u = usage_of(pid);
    const gint64 now = g_get_monotonic_time();
    seen.emplace_back(now, u.rss_kib);
    if (now - seen.front().first < 3 * G_USEC_PER_SEC) return false;
    while (now - seen[1].first >= 3 * G_USEC_PER_SEC) seen.erase(seen.begin());
    long lo = u.rss_kib, hi = u.rss_kib;
    for (const auto &x : seen) lo = std::min(lo, x.second), hi = std::max(hi, x.second);
    return hi - lo <= hi / 100;
  }, 15000);
  return u;
}

// What the fds are ("socket" 12, "anon_inode:[eventfd]" 3, ...): names a leak.
std::string fd_kinds(int pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  std::map<std::string, int> kinds;
  GDir *d = g_dir_open(dir.c_str(), 0, nullptr);
  if (!d) return {};
  while (const gchar *name = g_dir_read_name(d)) {
    g_autofree gchar *target = g_file_read_link((dir + "/" + name).c_str(), nullptr);
    std::string k = target ? target : "?";
    if (k.rfind("socket:", 0) == 0) k = "socket";
    if (k.rfind("pipe:", 0) == 0) k = "pipe";
    kinds[k]++;
  }
  g_dir_close(d);
  std::string out;
  for (const auto &kv : kinds) out += kv.first + " " + std::to_string(kv.second) + "; ";
  return out;
}

std::string describe(const Usage &u) {
  std::ostringstream s;
  s << u.fds << " fds, " << u.threads << " threads, RSS " << u.rss_kib << " KiB";
  return s.str();
}

// Slack for lazily created, pooled resources (GLib's shared thread pools
// keep idle threads for a while; a socket may be in the middle of closing).
constexpr long kFdSlack = 3;
constexpr long kThreadSlack = 3;

bool back_to(int pid, const Usage &baseline, Usage *now) {
  *now = usage_of(pid);
  return now->fds <= baseline.fds + kFdSlack && now->threads <= baseline.threads + kThreadSlack;
}

guint env_uint(const char *name, guint fallback) {
  const char *v = g_getenv(name);
  return v && *v ? static_cast<guint>(std::strtoul(v, nullptr, 10)) : fallback;
}

class ServerFaults : public ::testing::Test {
 public:
  static constexpr int kPublisherTimeoutS = 4;
  static constexpr int kViewerTimeoutS = 8;
  void SetUp() override {
    REQUIRE_SERVER_ELEMENTS();
    if (!test::our_elements({"whipsink", "whepsrc"})) FAIL() << "whipsink/whepsrc missing or not from the whipwhep plugin";
    // Short publisher and viewer timeouts (the defaults are 15 s) through the
    // pipeline template, as an operator would set them: the tests check that
    // a vanished peer is noticed, and wait out each timeout once or twice.
    // A viewer timeout must stay above the test viewers' RTCP interval
    // (webrtcbin's rtpsession: 5 s minimum, randomised to 2-6 s).
    const std::string conf = dir_.file("faults.conf");
    const std::string text = "[pipeline]\ntemplate=whipserversrc name=src publisher-timeout=" +
                             std::to_string(kPublisherTimeoutS) +
                             " whepserversink name=sink viewer-timeout=" +
                             std::to_string(kViewerTimeoutS) + "\n";
    ASSERT_TRUE(g_file_set_contents(conf.c_str(), text.c_str(), -1, nullptr));
    ASSERT_TRUE(server_.start({"--config", conf, "--api-token", kToken})) << server_.output();
    HttpReply created = http("POST", server_.live_inputs_url(), kToken, "application/json",
                             R"({"meta":{"name":"faults"}})");
    ASSERT_EQ(created.status, 200u) << created.body;
    uid_ = str(created.result(), "uid");
    publish_ = nested(created.result(), "webRTC", "url");
    play_ = nested(created.result(), "webRTCPlayback", "url");
  }
  void TearDown() override {
    if (server_.running()) {
      EXPECT_EQ(server_.terminate(), 0) << server_.output();
    }
  }
  std::string status() {
    return str(http("GET", server_.live_inputs_url() + "/" + uid_, kToken).result(), "status");
  }
  gint64 viewers() {
    const HttpReply r = http("GET", server_.live_inputs_url() + "/" + uid_, kToken);
    JsonObject *o = r.result();
    return o ? json_object_get_int_member(o, "liveViewers") : -1;
  }
  bool wait_connected(const Client *publisher = nullptr) {
    return wait_for(
        [&] { return status() == "connected" || (publisher && publisher->bus->has_error()); },
        20000) &&
           status() == "connected";
  }

  TempDir dir_;
  ServerProcess server_{dir_.path()};
  std::string uid_, publish_, play_;
};

TEST_F(ServerFaults, PublisherSigkilledViewerStaysAndGetsTheNextPublishersMedia) {
  auto first = std::make_unique<ChildPipeline>(publisher_launch(publish_));
  ASSERT_TRUE(first->started());
  ASSERT_TRUE(wait_connected()) << "status " << status() << "\n" << server_.output();

  Client viewer(decoding_viewer(play_));
  BufferCounter frames;
  viewer.count(&frames);
  viewer.play();
  ASSERT_TRUE(wait_for([&] { return frames.count() >= 15 || viewer.bus->has_error(); }, 30000))
      << "decoded " << frames.count() << "; " << viewer.bus->error_text();
  const std::string viewer_session = viewer.resource_url("whep");
  ASSERT_FALSE(viewer_session.empty());

  // SIGKILL: no DELETE, the publisher's packets just stop.
  first->kill();
  const gint64 killed = g_get_monotonic_time();
  EXPECT_TRUE(wait_for([&] { return status() != "connected"; }, 20000))
      << "the server still thinks the killed publisher is live";
  const double noticed_s = (g_get_monotonic_time() - killed) / 1e6;
  g_print("publisher SIGKILLed: status '%s' after %.1f s (publisher-timeout=%d)\n",
          status().c_str(), noticed_s, kPublisherTimeoutS);
  // The timeout plus the 1 s watchdog tick, with slack for a loaded machine.
  EXPECT_LT(noticed_s, kPublisherTimeoutS + 6.0);

  // The viewer stays: no error, still counted, same session.
  EXPECT_FALSE(viewer.bus->has_error()) << viewer.bus->error_text();
  EXPECT_EQ(viewers(), 1);
  EXPECT_EQ(http("OPTIONS", viewer_session).status, 204u);

  // A new publisher on the same publish URL: the viewer receives media again
  // without reconnecting.
  const guint64 before = frames.count();
  ChildPipeline second(publisher_launch(publish_));
  ASSERT_TRUE(wait_connected()) << "status " << status() << "\n" << server_.output();
  EXPECT_TRUE(wait_for([&] { return frames.count() >= before + 30 || viewer.bus->has_error(); },
                       30000))
      << "frames after the new publisher: " << frames.count() - before << "; "
      << viewer.bus->error_text();
  g_print("frames decoded after the second publisher came: %" G_GUINT64_FORMAT "\n",
          frames.count() - before);
  EXPECT_FALSE(viewer.bus->has_error()) << viewer.bus->error_text();
  EXPECT_EQ(viewer.resource_url("whep"), viewer_session) << "the viewer reconnected";
  EXPECT_EQ(viewers(), 1);
}

TEST_F(ServerFaults, KilledViewerProcessesAreRemovedAndResourcesReturn) {
  Client publisher(publisher_launch(publish_));
  publisher.play();
  ASSERT_TRUE(wait_connected(&publisher)) << publisher.bus->error_text() << "\n"
                                          << server_.output();
  const int pid = server_.pid();
  ASSERT_GT(pid, 0);
  // One viewer joins and leaves first, so that what is created once per
  // process (thread pools, the first viewer's caps) is in the baseline.
  {
    Client warm(decoding_viewer(play_));
    BufferCounter frames;
    warm.count(&frames);
    warm.play();
    ASSERT_TRUE(wait_for([&] { return frames.count() >= 5 || warm.bus->has_error(); }, 30000))
        << warm.bus->error_text();
  }
  ASSERT_TRUE(wait_for([&] { return viewers() == 0; }, 15000));
  Usage baseline;
  wait_for([&] { return false; }, 2000);  // let the warm-up viewer's teardown settle
  baseline = usage_of(pid);
  g_print("baseline: %s (%s)\n", describe(baseline).c_str(), fd_kinds(pid).c_str());

  constexpr int kViewers = 5;
  std::vector<std::unique_ptr<ChildPipeline>> children;
  for (int i = 0; i < kViewers; i++)
    children.push_back(std::make_unique<ChildPipeline>(lean_viewer(play_)));
  EXPECT_TRUE(wait_for([&] { return viewers() == kViewers; }, 30000)) << viewers();
  // Media flows to them for a moment.
  wait_for([&] { return false; }, 2000);
  const Usage loaded = usage_of(pid);
  g_print("with %d viewers: %s\n", kViewers, describe(loaded).c_str());
  EXPECT_GT(loaded.fds, baseline.fds) << "viewers should hold sockets";

  for (auto &c : children) c->kill();  // SIGKILL: no DELETE
  const gint64 killed = g_get_monotonic_time();
  EXPECT_TRUE(wait_for([&] { return viewers() == 0; }, (kViewerTimeoutS + 12) * 1000))
      << "liveViewers still " << viewers() << " " << kViewerTimeoutS + 12
      << " s after the viewers were killed";
  g_print("liveViewers 0 after %.1f s (viewer-timeout=%d)\n",
          (g_get_monotonic_time() - killed) / 1e6, kViewerTimeoutS);
  Usage now;
  EXPECT_TRUE(wait_for([&] { return back_to(pid, baseline, &now); }, 20000))
      << "baseline " << describe(baseline) << ", now " << describe(now) << ": " << fd_kinds(pid);
  g_print("after: %s\n", describe(now).c_str());
  EXPECT_EQ(status(), "connected") << "the publisher must not be affected";
}

// libsoup 3.2 left every keep-alive connection its client closed in
// CLOSE_WAIT, one fd each, forever: 5000 fds after a minute of polling.
TEST_F(ServerFaults, ClosedClientConnectionsDoNotLeakFds) {
  const int pid = server_.pid();
  const Usage before = usage_of(pid);
  for (int i = 0; i < 200; i++) {
    HttpReply r = http("GET", server_.live_inputs_url(), kToken);  // a new connection each
    ASSERT_EQ(r.status, 200u);
  }
  Usage now;
  EXPECT_TRUE(wait_for([&] { return back_to(pid, before, &now); }, 10000))
      << "before " << describe(before) << ", after 200 requests " << describe(now) << ": "
      << fd_kinds(pid);
}

// One in-process viewer of the soak.
struct SoakViewer {
  explicit SoakViewer(const std::string &url) : client(lean_viewer(url)) {
    client.count(&buffers);
    client.play();
    started = g_get_monotonic_time();
  }
  Client client;
  BufferCounter buffers;
  gint64 started = 0;
};

void soak(ServerFaults *t);

// 2000 viewer sessions, 50 at a time (WHIPWHEP_SOAK_* to change): fds and
// threads must come back to their baseline, and RSS may grow by at most
// 8 KiB per session after the warm-up (the first half; see the known leak).
TEST_F(ServerFaults, ViewerChurnSoakReturnsFdsThreadsAndRssToBaseline) { soak(this); }

void soak(ServerFaults *t) {
  // The issue's size, in CI too: 2000 sessions, 50 at a time (about 80 s
  // here). It once stalled the server: every thread posting a viewer's
  // state-changed messages spun in the top-level bus's queue; whepserversink
  // now keeps those to itself.
  const guint total = env_uint("WHIPWHEP_SOAK_SESSIONS", 2000);
  const guint at_once = std::max(1u, env_uint("WHIPWHEP_SOAK_CONCURRENCY", 50));
  // Warm-up: the first half. RSS (read once settled, after the server's
  // periodic malloc_trim) rises over the first ~1000 sessions, 20 rounds of
  // 50 viewers, while glibc's arenas (one per busy thread, up to 16 here)
  // reach their working size. It does not quite hold after that - a known,
  // open leak, not yet fixed. Measured 2026-11-30 from session 1000 to 2000
  // while every viewer had its own ICE agent: +5.9-6.8 KiB per session with
  // g_slice on malloc (the server's default, RSS 53 MB after 1000 sessions),
  // +3.4 KiB with GLib's slice magazines. Since viewers share ICE agents
  // (32 to one): +1.0-4.1 KiB (two CI runs, three local). Most of it looked
  // like one NiceAgent reference left per session (bench/RESULTS.md,
  // session 7), which kept a whole agent per session then and keeps one
  // per 32 now.
  const guint warmup = std::min(env_uint("WHIPWHEP_SOAK_WARMUP", total / 2), total / 2);
  // ASan's quarantine holds freed memory on purpose: no RSS check there.
  const bool check_rss = g_getenv("WHIPWHEP_SANITIZER") == nullptr;
  // Each viewer leaves after this many buffers (or the timeout below).
  constexpr guint64 kBuffersPerViewer = 10;
  constexpr gint64 kViewerTimeoutUs = 15 * G_USEC_PER_SEC;

  Client publisher(publisher_launch(t->publish_));
  publisher.play();
  ASSERT_TRUE(t->wait_connected(&publisher)) << publisher.bus->error_text();
  const int pid = t->server_.pid();
  const Usage before = usage_of(pid);
  g_print("soak: %u sessions, %u at a time; before any viewer: %s\n", total, at_once,
          describe(before).c_str());

  std::vector<std::unique_ptr<SoakViewer>> active;
  guint started = 0, finished = 0, with_media = 0, errors = 0;
  Usage after_warmup;
  const gint64 t0 = g_get_monotonic_time();
  const gint64 deadline = t0 + gint64(std::max(120u, total / 10)) * G_USEC_PER_SEC;
  while ((started < total || !active.empty()) && g_get_monotonic_time() < deadline) {
    // At the end of the warm-up, let its viewers leave before measuring.
    const bool draining = started >= warmup && after_warmup.rss_kib < 0;
    if (draining && active.empty()) {
      wait_for([&] { return t->viewers() == 0; }, 15000);
      Usage settled;
      wait_for([&] { return back_to(pid, before, &settled); }, 10000);
      after_warmup = settled_usage(pid);
      g_print("after %u sessions (warm-up, no viewer left): %s\n", warmup,
              describe(after_warmup).c_str());
      continue;
    }
    while (!draining && started < total && active.size() < at_once) {
      active.push_back(std::make_unique<SoakViewer>(t->play_));
      started++;
    }
    // Iterate the main context until a viewer is done.
    wait_for([&] {
      for (auto &v : active)
        if (v->buffers.count() >= kBuffersPerViewer || v->client.bus->has_error() ||
            g_get_monotonic_time() - v->started > kViewerTimeoutUs)
          return true;
      return false;
    }, 1000);
    for (auto it = active.begin(); it != active.end();) {
      SoakViewer &v = **it;
      const bool got = v.buffers.count() >= kBuffersPerViewer;
      const bool err = v.client.bus->has_error();
      if (!got && !err && g_get_monotonic_time() - v.started <= kViewerTimeoutUs) {
        ++it;
        continue;
      }
      if (got) with_media++;
      if (err) {
        if (errors++ < 3) g_print("viewer error: %s\n", v.client.bus->error_text().c_str());
      }
      it = active.erase(it);  // whepsrc DELETEs its session going to NULL
      ++finished;
      if (finished % 250 == 0)
        g_print("  %u sessions done: %s\n", finished, describe(usage_of(pid)).c_str());
    }
  }
  const double secs = (g_get_monotonic_time() - t0) / 1e6;
  active.clear();
  g_print("soak: %u sessions in %.1f s, %u got media, %u errors\n", finished, secs, with_media,
          errors);
  EXPECT_EQ(finished, total) << "the soak did not finish in time";
  EXPECT_GE(with_media, total * 95 / 100) << "viewers that got no media";

  EXPECT_TRUE(wait_for([&] { return t->viewers() == 0; }, 30000)) << "liveViewers " << t->viewers();
  Usage end;
  EXPECT_TRUE(wait_for([&] { return back_to(pid, before, &end); }, 30000))
      << "before " << describe(before) << ", end " << describe(end);
  end = settled_usage(pid);
  g_print("soak end: %s (before viewers: %s; after warm-up: %s)\n", describe(end).c_str(),
          describe(before).c_str(), describe(after_warmup).c_str());
  ASSERT_GT(after_warmup.rss_kib, 0);
  const double growth = double(end.rss_kib - after_warmup.rss_kib) / after_warmup.rss_kib;
  g_print("RSS growth after warm-up: %+.1f %%\n", growth * 100);
  if (!check_rss) {
    g_print("RSS not checked under a sanitizer (its quarantine keeps freed memory)\n");
  } else {
    // Per session after the warm-up, so the bound does not depend on the
    // baseline. The known leak above measures 1.0-4.1 KiB a session; 8 KiB
    // leaves room for that spread (the bound must not make CI flaky) and
    // still fails anything that doubles it.
    const double kib_per_session =
        double(end.rss_kib - after_warmup.rss_kib) / std::max(1u, total - warmup);
    g_print("RSS growth after warm-up: %.2f KiB per session\n", kib_per_session);
    EXPECT_LE(kib_per_session, 8.0) << "RSS after warm-up " << after_warmup.rss_kib
                                     << " KiB, at the end " << end.rss_kib << " KiB";
  }
  EXPECT_EQ(t->status(), "connected");
  EXPECT_FALSE(publisher.bus->has_error()) << publisher.bus->error_text();
}

}  // namespace
