// join: how fast a WHEP viewer gets going.
//   1. sequential joins (one at a time): WHEP POST -> 201 answer, and answer ->
//      first decoded frame, with the publisher's keyframe interval at 10 s
//      (so the first frame depends on the relay asking the publisher for a
//      keyframe on join, not on waiting for the next periodic one);
//   2. sustained set-up rate: --burst sessions started with --in-flight
//      (default 16) set up at once,
//      sessions/s until all receive RTP, and POST -> answer p50/p99 under it.
//      --viewer=lean (default): the burst's viewers are LeanViewers
//      (lean-viewer.h: ICE + DTLS, SRTP counted, not decrypted), so the
//      client's own set-up cost (a webrtcbin each) does not cap the rate;
//      --viewer=webrtcbin as before. Also the relay process's CPU per
//      session over the burst, and per second in the 6 s after it.
#include <gst/gst.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bench-util.h"
#include "lean-viewer.h"
#include "viewer-client.h"

namespace {

using bench::fmt;

struct Options {
  std::vector<std::string> modes{"ours", "naive"};
  int sequential = 20, burst = 200;
  int in_flight = 16;  // burst sessions set up at once
  double timeout = 10;
  std::string csv = "join.csv";
  std::string viewer = "lean";  // burst viewers: lean | webrtcbin
  double tail_s = 6;             // relay CPU measured this long after the burst (0: not)
};

struct Result {
  std::vector<double> answer_ms, first_frame_ms, burst_answer_ms, burst_setup_ms;
  int seq_failed = 0, burst_connected = 0, burst_failed = 0;
  double rate = NAN;
  // The relay process's CPU (utime + stime): per connected session over the
  // burst, and per second in the Options::tail_s seconds after its last
  // session got media (work that goes on after the set-up, e.g. ICE timers: libnice
  // keeps an agent's check timer running for its idle-timeout, 5 s, after
  // its last check, and every tick scans all the agent's check lists).
  double relay_cpu_ms_per_session = NAN, relay_tail_cpu = NAN;
  std::string error;
};

Result run_mode(const Options &o, const std::string &mode) {
  Result r;
  guint whip = bench::free_port(), whep = bench::free_port();
  bench::Child relay({bench::self_dir() + "/whipwhep-bench-relay", "--mode=" + mode,
                      "--whip-port=" + std::to_string(whip), "--whep-port=" + std::to_string(whep),
                      "--max-seconds=900"});
  if (relay.wait_line("ready", 10).empty()) {
    r.error = "relay did not start";
    return r;
  }
  std::string desc = fmt(
      "videotestsrc is-live=true pattern=smpte horizontal-speed=4 ! "
      "video/x-raw,format=I420,width=640,height=360,framerate=30/1 ! "
      "vp8enc deadline=1 cpu-used=8 end-usage=cbr target-bitrate=1000000 keyframe-max-dist=300 lag-in-frames=0 "
      "threads=1 ! whipsink whip-endpoint=http://127.0.0.1:%u/whip ice-addresses=127.0.0.1",
      whip);
  GError *err = nullptr;
  GstElement *pub = gst_parse_launch(desc.c_str(), &err);
  if (!pub) {
    r.error = err ? err->message : "publisher";
    return r;
  }
  gst_element_set_state(pub, GST_STATE_PLAYING);
  GstElement *viewers_pipe = gst_pipeline_new("viewers");
  gst_element_set_state(viewers_pipe, GST_STATE_PLAYING);
  g_usleep(2 * G_USEC_PER_SEC);
  std::string endpoint = fmt("http://127.0.0.1:%u/whep", whep);
  std::vector<std::unique_ptr<bench::ViewerBase>> all;
  std::unique_ptr<bench::LeanHost> host;
  if (o.viewer == "lean") host = std::make_unique<bench::LeanHost>();

  for (int i = 0; i < o.sequential; i++) {
    all.push_back(std::make_unique<bench::Viewer>(viewers_pipe, endpoint, true));
    auto &v = *all.back();
    v.start();
    double deadline = bench::now_ms() + o.timeout * 1000;
    while (bench::now_ms() < deadline && v.frames() == 0 && !v.failed()) g_usleep(2000);
    auto t = v.times();
    if (v.frames() == 0) {
      r.seq_failed++;
      if (r.error.empty()) r.error = v.failed() ? v.error() : "no decoded frame within timeout";
      continue;  // kept (not stopped) so no late callback touches a dead viewer
    }
    r.answer_ms.push_back(t.answer - t.post);
    r.first_frame_ms.push_back(t.first_frame - t.answer);
    v.stop();
    g_usleep(200000);
  }

  const bench::ProcSample cpu0 = bench::sample_proc(relay.pid());
  double t0 = bench::now_ms();
  size_t first = all.size();
  int started = 0;
  double deadline = t0 + o.timeout * 1000 + o.burst * 100.0;
  while (bench::now_ms() < deadline) {
    int pending = 0, done = 0;
    for (size_t i = first; i < all.size(); i++) {
      if (all[i]->connected() || all[i]->failed()) done++;
      else pending++;
    }
    if (done == o.burst) break;
    while (pending < o.in_flight && started < o.burst) {
      if (host) all.push_back(std::make_unique<bench::LeanViewer>(*host, endpoint));
      else all.push_back(std::make_unique<bench::Viewer>(viewers_pipe, endpoint, false));
      all.back()->start();
      started++, pending++;
    }
    g_usleep(1000);
  }
  double last = t0;
  for (size_t i = first; i < all.size(); i++) {
    auto t = all[i]->times();
    if (all[i]->connected()) {
      r.burst_connected++;
      last = std::max(last, t.first_rtp);
      r.burst_setup_ms.push_back(t.first_rtp - t.post);
    } else {
      r.burst_failed++;
      if (r.error.empty() && all[i]->failed()) r.error = all[i]->error();
    }
    if (t.answer > 0) r.burst_answer_ms.push_back(t.answer - t.post);
  }
  if (r.burst_connected > 0) r.rate = r.burst_connected / ((last - t0) / 1000);
  const bench::ProcSample cpu1 = bench::sample_proc(relay.pid());
  if (cpu0.ok && cpu1.ok && r.burst_connected > 0)
    r.relay_cpu_ms_per_session = (cpu1.cpu_seconds - cpu0.cpu_seconds) * 1000 / r.burst_connected;
  if (o.tail_s > 0) {
    g_usleep(gulong(o.tail_s * G_USEC_PER_SEC));
    const bench::ProcSample cpu2 = bench::sample_proc(relay.pid());
    if (cpu1.ok && cpu2.ok) r.relay_tail_cpu = (cpu2.cpu_seconds - cpu1.cpu_seconds) / o.tail_s;
  }

  bench::shutdown_http_workers();
  all.clear();
  host.reset();
  gst_element_set_state(viewers_pipe, GST_STATE_NULL);
  gst_object_unref(viewers_pipe);
  gst_element_set_state(pub, GST_STATE_NULL);
  gst_object_unref(pub);
  relay.stop(10);
  return r;
}

}  // namespace

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  Options o;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--smoke") o.sequential = 3, o.burst = 10, o.modes = {"ours"}, o.tail_s = 0;
    else if (a.rfind("--sequential=", 0) == 0) o.sequential = std::stoi(a.substr(13));
    else if (a.rfind("--burst=", 0) == 0) o.burst = std::stoi(a.substr(8));
    else if (a.rfind("--in-flight=", 0) == 0) o.in_flight = std::max(1, std::stoi(a.substr(12)));
    else if (a.rfind("--modes=", 0) == 0) {
      o.modes.clear();
      std::stringstream ss(a.substr(8));
      std::string m;
      while (std::getline(ss, m, ',')) o.modes.push_back(m);
    } else if (a.rfind("--csv=", 0) == 0) o.csv = a.substr(6);
    else if (a == "--viewer=lean" || a == "--viewer=webrtcbin") o.viewer = a.substr(9);
    else {
      fprintf(stderr, "usage: %s [--smoke] [--sequential=20] [--burst=200] [--in-flight=16] [--modes=ours,naive] [--viewer=lean|webrtcbin] "
              "[--csv=FILE]\n",
              argv[0]);
      return 2;
    }
  }
  // The HTTP worker pool is process-wide and shut down per mode: one mode per
  // process keeps that simple.
  if (o.modes.size() > 1) {
    int rc = 0;
    for (auto &m : o.modes) {
      std::string cmd = fmt("'%s' --modes=%s --sequential=%d --burst=%d --in-flight=%d --viewer=%s --csv='%s'",
                            argv[0], m.c_str(), o.sequential, o.burst, o.in_flight, o.viewer.c_str(), o.csv.empty() ? "" : (o.csv + "." + m).c_str());
      rc |= system(cmd.c_str());
    }
    return rc ? 1 : 0;
  }
  const std::string &mode = o.modes.at(0);
  printf("# join (%s): 640x360 30 fps VP8 1 Mbit/s, keyframe every 10 s; burst viewers: %s; %s\n", mode.c_str(),
         o.viewer.c_str(), bench::machine_description().c_str());
  Result r = run_mode(o, mode);
  printf("%-6s %-28s %6s %9s %9s\n", "mode", "figure", "n", "p50", "p99");
  auto row = [&](const char *name, const std::vector<double> &v) {
    printf("%-6s %-28s %6zu %9.1f %9.1f\n", mode.c_str(), name, v.size(), bench::percentile(v, 50),
           bench::percentile(v, 99));
  };
  row("answer ms (sequential)", r.answer_ms);
  row("first frame ms after answer", r.first_frame_ms);
  row("answer ms (burst)", r.burst_answer_ms);
  row("POST->first RTP ms (burst)", r.burst_setup_ms);
  printf("%-6s set-up rate %.1f sessions/s (%d connected, %d failed of %d, %d in flight); sequential failures %d; %s\n",
         mode.c_str(), r.rate, r.burst_connected, r.burst_failed, o.burst, o.in_flight, r.seq_failed,
         r.error.empty() ? "no errors" : r.error.c_str());
  printf("%-6s relay CPU %.1f ms per session over the burst", mode.c_str(), r.relay_cpu_ms_per_session);
  if (o.tail_s > 0) printf(", %.3f CPU s/s in the %.0f s after it", r.relay_tail_cpu, o.tail_s);
  printf("\n");
  bench::Csv csv(o.csv, "mode,answer_p50_ms,answer_p99_ms,first_frame_p50_ms,first_frame_p99_ms,burst_answer_p50_ms,"
                        "burst_answer_p99_ms,burst_setup_p50_ms,burst_setup_p99_ms,sessions_per_s,burst_connected,"
                        "burst_failed,sequential_ok,sequential_failed,relay_cpu_ms_per_session,relay_tail_cpu_s_per_s");
  csv.row(fmt("%s,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%d,%d,%zu,%d,%.2f,%.3f", mode.c_str(),
              bench::percentile(r.answer_ms, 50), bench::percentile(r.answer_ms, 99),
              bench::percentile(r.first_frame_ms, 50), bench::percentile(r.first_frame_ms, 99),
              bench::percentile(r.burst_answer_ms, 50), bench::percentile(r.burst_answer_ms, 99),
              bench::percentile(r.burst_setup_ms, 50), bench::percentile(r.burst_setup_ms, 99), r.rate,
              r.burst_connected, r.burst_failed, r.answer_ms.size(), r.seq_failed,
              r.relay_cpu_ms_per_session, r.relay_tail_cpu));
  return (r.answer_ms.empty() || r.burst_connected == 0) ? 1 : 0;
}
