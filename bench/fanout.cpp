// fanout: one 1 Mbit/s VP8 publisher into the relay process, N WHEP viewers
// for each N in --steps, spread over several load-generator processes (this
// binary with --gen). Per step: the relay's CPU seconds per second over a
// steady window (/proc/PID/stat), VmRSS, threads, per-viewer delivered
// bitrate (min/median) and loss; then CPU % of a core and MB per viewer from
// the least-squares slope over N. --modes=ours,naive runs the same steps
// against whepserversink and against the naive tee + webrtcbin relay.
// --viewer=lean (default) makes the load generators' viewers LeanViewers
// (lean-viewer.h: ICE + DTLS, SRTP counted, not decrypted); --viewer=webrtcbin
// one recvonly webrtcbin each (viewer-client.h), as before. Either way the
// first generator's first viewer is a decoding webrtcbin (the `frames`
// column), and the generators' own CPU and threads are reported per step.
//
// Generator protocol (stdin/stdout, one line each):
//   "add K TIMEOUT_S" -> "added total=.. connected=.. failed=.. error=.."
//   "snap"            -> "v BYTES PACKETS LOST CONNECTED" per viewer, then
//                        "end FRAMES DECRYPTED RECEIVED" (decoded frames of the decoding viewer;
//                        SRTP packets the lean sample viewer decrypted / received)
#include <glib-unix.h>
#include <gst/gst.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bench-util.h"
#include "gobj.h"
#include "lean-viewer.h"
#include "viewer-client.h"

namespace {

using bench::fmt;

// ---------------------------------------------------------------- generator
int run_generator(const std::string &endpoint, bool decode_first, bool lean) {
  gobj::Ref<GstElement> pipeline = gobj::sink(gst_pipeline_new("gen"));
  gst_element_set_state(pipeline.get(), GST_STATE_PLAYING);
  std::unique_ptr<bench::LeanHost> host;
  if (lean) host = std::make_unique<bench::LeanHost>();
  std::vector<std::unique_ptr<bench::ViewerBase>> viewers;
  std::string line;
  printf("ready pid=%d\n", int(getpid()));
  fflush(stdout);
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string cmd;
    in >> cmd;
    if (cmd == "add") {
      size_t k = 0;
      double timeout = 60;
      in >> k >> timeout;
      size_t first = viewers.size();
      double deadline = bench::now_ms() + timeout * 1000;
      const size_t kInFlight = 16;  // negotiations at once: the relay sees a steady join rate
      size_t next = first;
      std::string err;
      while (bench::now_ms() < deadline) {
        size_t pending = 0, done = 0;
        for (size_t i = first; i < viewers.size(); i++) {
          if (viewers[i]->connected() || viewers[i]->failed()) done++;
          else pending++;
          if (viewers[i]->failed() && err.empty()) err = viewers[i]->error();
        }
        if (done == k) break;
        while (pending < kInFlight && next < first + k) {
          const bool decode = decode_first && viewers.empty();
          if (lean && !decode) viewers.push_back(std::make_unique<bench::LeanViewer>(*host, endpoint));
          else viewers.push_back(std::make_unique<bench::Viewer>(pipeline.get(), endpoint, decode));
          viewers.back()->start();
          next++, pending++;
        }
        g_usleep(5000);
      }
      size_t connected = 0, failed = 0;
      for (size_t i = first; i < viewers.size(); i++) {
        if (viewers[i]->connected()) connected++;
        else if (viewers[i]->failed()) failed++;
      }
      for (char &c : err)
        if (c == ' ' || c == '\n' || c == '\r') c = '_';
      printf("added total=%zu connected=%zu failed=%zu error=%s\n", viewers.size(), connected, failed,
             err.empty() ? "-" : err.c_str());
    } else if (cmd == "snap") {
      guint64 frames = 0;
      for (auto &v : viewers) {
        printf("v %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %d\n", v->bytes(), v->packets(),
               v->lost(), v->connected() ? 1 : 0);
        frames += v->frames();
      }
      printf("end %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT "\n", frames,
             host ? host->sample_decrypted() : 0, host ? host->sample_received() : 0);
    } else if (cmd == "quit") {
      break;
    }
    fflush(stdout);
  }
  bench::shutdown_http_workers();  // first: no answer callback may outlive its viewer
  viewers.clear();
  host.reset();
  gst_element_set_state(pipeline.get(), GST_STATE_NULL);
  return 0;
}

// ---------------------------------------------------------------- controller
struct Options {
  std::vector<int> steps{10, 100, 500, 1000, 2000};
  std::vector<std::string> modes{"ours", "naive"};
  double window = 10, settle = 3;
  int viewers_per_gen = 250, min_gens = 2;
  double step_timeout = 300;
  std::string csv = "fanout.csv";
  std::string plot_data;  // gnuplot-friendly data file
  std::string viewer = "lean";  // lean | webrtcbin
};

struct Snap {
  std::vector<guint64> bytes, packets, lost;
  guint64 frames = 0, decrypted = 0, received = 0;
};

bool snap(std::vector<std::unique_ptr<bench::Child>> &gens, Snap *out) {
  for (auto &g : gens) {
    g->write_line("snap");
    for (;;) {
      std::string l = g->wait_line("", 30);
      if (l.empty()) return false;
      if (l.rfind("end", 0) == 0) {
        guint64 f = 0, d = 0, r = 0;
        sscanf(l.c_str(), "end %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT, &f, &d, &r);
        out->frames += f, out->decrypted += d, out->received += r;
        break;
      }
      if (l.rfind("v ", 0) != 0) continue;
      guint64 b, p, lo;
      int c;
      if (sscanf(l.c_str(), "v %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %d", &b, &p, &lo,
                 &c) == 4) {
        out->bytes.push_back(b), out->packets.push_back(p), out->lost.push_back(lo);
      }
    }
  }
  return true;
}

struct StepResult {
  int n = 0, connected = 0;
  double cpu = NAN, rss = NAN, setup_s = NAN;
  int threads = 0;
  double kbps_min = NAN, kbps_med = NAN, loss_pct = NAN;
  guint64 frames = 0, decrypted = 0, received = 0;
  double gen_cpu = NAN;  // all load generators together, CPU s/s over the window
  int gen_threads = 0;
};

// The load generators' own cost (to show they are not the bottleneck).
bench::ProcSample sample_gens(std::vector<std::unique_ptr<bench::Child>> &gens) {
  bench::ProcSample sum;
  for (auto &g : gens) {
    bench::ProcSample s = bench::sample_proc(g->pid());
    sum.cpu_seconds += s.cpu_seconds, sum.threads += s.threads, sum.rss_mb += s.rss_mb;
  }
  return sum;
}

std::vector<StepResult> run_mode(const Options &o, const std::string &mode, std::string *stopped) {
  std::vector<StepResult> out;
  guint whip = bench::free_port(), whep = bench::free_port();
  bench::Child relay({bench::self_dir() + "/whipwhep-bench-relay", "--mode=" + mode,
                      "--whip-port=" + std::to_string(whip), "--whep-port=" + std::to_string(whep),
                      "--max-seconds=3600"});
  if (relay.wait_line("ready", 10).empty()) {
    *stopped = "relay did not start";
    return out;
  }
  // The publisher runs in this process (it is not the relay's cost).
  std::string desc = fmt(
      "videotestsrc is-live=true pattern=smpte horizontal-speed=4 ! "
      "video/x-raw,format=I420,width=640,height=360,framerate=30/1 ! "
      "vp8enc deadline=1 cpu-used=8 end-usage=cbr target-bitrate=1000000 keyframe-max-dist=60 lag-in-frames=0 "
      "threads=1 ! whipsink whip-endpoint=http://127.0.0.1:%u/whip ice-addresses=127.0.0.1",
      whip);
  GError *err = nullptr;
  GstElement *pub = gst_parse_launch(desc.c_str(), &err);
  if (!pub) {
    *stopped = err ? err->message : "publisher";
    return out;
  }
  gst_element_set_state(pub, GST_STATE_PLAYING);
  g_usleep(2 * G_USEC_PER_SEC);

  // Zero viewers: the relay's own baseline.
  {
    StepResult r;
    bench::ProcSample a = bench::sample_proc(relay.pid());
    g_usleep(guint64(o.window * G_USEC_PER_SEC));
    bench::ProcSample b = bench::sample_proc(relay.pid());
    r.cpu = (b.cpu_seconds - a.cpu_seconds) / o.window;
    r.rss = b.rss_mb, r.threads = b.threads;
    out.push_back(r);
    printf("%-6s %6d %6d %8s %8.3f %8.1f %8d\n", mode.c_str(), 0, 0, "-", r.cpu, r.rss, r.threads);
    fflush(stdout);
  }

  std::vector<std::unique_ptr<bench::Child>> gens;
  std::string endpoint = fmt("http://127.0.0.1:%u/whep", whep);
  int have = 0, have_connected = 0;
  for (int n : o.steps) {
    // Enough generator processes for this N.
    size_t want_gens = std::max<size_t>(o.min_gens, (n + o.viewers_per_gen - 1) / o.viewers_per_gen);
    while (gens.size() < want_gens) {
      std::vector<std::string> argv{bench::self_dir() + "/fanout", "--gen=" + endpoint, "--viewer=" + o.viewer};
      if (gens.empty()) argv.push_back("--decode-first");
      gens.push_back(std::make_unique<bench::Child>(argv));
      if (gens.back()->wait_line("ready", 10).empty()) {
        *stopped = fmt("N=%d: a load generator did not start", n);
        goto done;
      }
    }
    {
      // Spread the new viewers over the generators (fill the emptiest first).
      int add = n - have;
      double t0 = bench::now_ms();
      std::vector<int> per(gens.size(), add / int(gens.size()));
      for (int i = 0; i < add % int(gens.size()); i++) per[i]++;
      for (size_t i = 0; i < gens.size(); i++)
        if (per[i] > 0) gens[i]->write_line(fmt("add %d %.0f", per[i], o.step_timeout));
      int connected = 0, failed = 0;
      std::string first_error;
      for (size_t i = 0; i < gens.size(); i++) {
        if (per[i] <= 0) continue;
        std::string l = gens[i]->wait_line("added", o.step_timeout + 30);
        if (l.empty()) {
          *stopped = fmt("N=%d: a load generator did not answer within %.0f s", n, o.step_timeout + 30);
          goto done;
        }
        int total, c, f;
        char e[512] = "";
        if (sscanf(l.c_str(), "added total=%d connected=%d failed=%d error=%511s", &total, &c, &f, e) >= 3) {
          connected += c, failed += f;
          if (first_error.empty() && strcmp(e, "-") != 0) first_error = e;
        }
      }
      int added = n - have;
      have = n;
      StepResult r;
      r.n = n;
      r.setup_s = (bench::now_ms() - t0) / 1000;
      g_usleep(guint64(o.settle * G_USEC_PER_SEC));
      Snap s0, s1;
      bench::ProcSample a = bench::sample_proc(relay.pid());
      bench::ProcSample ga = sample_gens(gens);
      double ta = bench::now_ms();
      if (!snap(gens, &s0)) {
        *stopped = fmt("N=%d: snapshot failed", n);
        goto done;
      }
      g_usleep(guint64(o.window * G_USEC_PER_SEC));
      bench::ProcSample b = bench::sample_proc(relay.pid());
      bench::ProcSample gb = sample_gens(gens);
      if (!snap(gens, &s1)) {
        *stopped = fmt("N=%d: snapshot failed", n);
        goto done;
      }
      double secs = (bench::now_ms() - ta) / 1000;
      r.cpu = (b.cpu_seconds - a.cpu_seconds) / secs;
      r.rss = b.rss_mb, r.threads = b.threads;
      std::vector<double> kbps;
      guint64 pk = 0, lo = 0;
      for (size_t i = 0; i < s1.bytes.size() && i < s0.bytes.size(); i++) {
        kbps.push_back((s1.bytes[i] - s0.bytes[i]) * 8.0 / secs / 1000);
        pk += s1.packets[i] - s0.packets[i];
        lo += s1.lost[i] - s0.lost[i];
      }
      // Viewers that never connected count as delivering 0.
      r.connected = connected + have_connected;
      have_connected = r.connected;
      r.kbps_min = bench::percentile(kbps, 0);
      r.kbps_med = bench::median(kbps);
      r.loss_pct = pk + lo ? 100.0 * lo / double(pk + lo) : NAN;
      r.frames = s1.frames - s0.frames;
      r.decrypted = s1.decrypted - s0.decrypted, r.received = s1.received - s0.received;
      r.gen_cpu = (gb.cpu_seconds - ga.cpu_seconds) / secs;
      r.gen_threads = gb.threads;
      out.push_back(r);
      printf("%-6s %6d %6d %8.1f %8.3f %8.1f %8d %9.0f %9.0f %7.3f %7" G_GUINT64_FORMAT " | %7.3f %7d %6zu %s\n",
             mode.c_str(), n, r.connected, r.setup_s, r.cpu, r.rss, r.threads, r.kbps_min, r.kbps_med, r.loss_pct,
             r.frames, r.gen_cpu, r.gen_threads, gens.size(),
             o.viewer == "lean" ? bench::fmt("%" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT, r.decrypted, r.received).c_str()
                                : "-");
      fflush(stdout);
      if (failed > 0 || connected < added) {
        *stopped = fmt("N=%d: %d of %d new viewers connected, %d failed (first error: %s); stopped here", n,
                       connected, added, failed, first_error.empty() ? "timeout" : first_error.c_str());
        goto done;
      }
    }
  }
done:
  for (auto &g : gens) g->write_line("quit");
  for (auto &g : gens) g->stop(10);
  gst_element_set_state(pub, GST_STATE_NULL);
  gst_object_unref(pub);
  relay.stop(10);
  return out;
}

std::vector<int> parse_ints(const std::string &s) {
  std::vector<int> v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) v.push_back(std::stoi(item));
  return v;
}

}  // namespace

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  Options o;
  std::string gen;
  bool decode_first = false;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a.rfind("--gen=", 0) == 0) gen = a.substr(6);
    else if (a == "--decode-first") decode_first = true;
    else if (a == "--smoke") o.steps = {4}, o.modes = {"ours"}, o.window = 2, o.settle = 1, o.step_timeout = 30;
    else if (a.rfind("--steps=", 0) == 0) o.steps = parse_ints(a.substr(8));
    else if (a.rfind("--modes=", 0) == 0) {
      o.modes.clear();
      std::stringstream ss(a.substr(8));
      std::string m;
      while (std::getline(ss, m, ',')) o.modes.push_back(m);
    } else if (a.rfind("--window=", 0) == 0) o.window = std::stod(a.substr(9));
    else if (a.rfind("--viewers-per-gen=", 0) == 0) o.viewers_per_gen = std::stoi(a.substr(18));
    else if (a.rfind("--step-timeout=", 0) == 0) o.step_timeout = std::stod(a.substr(15));
    else if (a.rfind("--csv=", 0) == 0) o.csv = a.substr(6);
    else if (a.rfind("--viewer=", 0) == 0) o.viewer = a.substr(9);
    else {
      fprintf(stderr,
              "usage: %s [--smoke] [--steps=10,100,500,1000,2000] [--modes=ours,naive] [--window=10] "
              "[--viewers-per-gen=250] [--step-timeout=300] [--viewer=lean|webrtcbin] [--csv=FILE]\n",
              argv[0]);
      return 2;
    }
  }
  if (o.viewer != "lean" && o.viewer != "webrtcbin") {
    fprintf(stderr, "--viewer must be lean or webrtcbin\n");
    return 2;
  }
  if (!gen.empty()) return run_generator(gen, decode_first, o.viewer == "lean");

  printf("# fanout: 640x360 30 fps VP8 1 Mbit/s publisher; window %.0f s; viewers: %s; %s\n", o.window,
         o.viewer.c_str(), bench::machine_description().c_str());
  printf("# left of |: the relay; right: the load generators together (CPU s/s, threads, processes) and the\n"
         "# lean sample viewer's SRTP packets decrypted/received in the window\n");
  printf("%-6s %6s %6s %8s %8s %8s %8s %9s %9s %7s %7s | %7s %7s %6s %s\n", "mode", "N", "conn", "setup s",
         "cpu s/s", "RSS MB", "threads", "kbps min", "kbps med", "loss %", "frames", "gen cpu", "gen thr", "gens",
         "sample dec/rcv");
  bench::Csv csv(o.csv, "mode,n,connected,setup_s,cpu_s_per_s,rss_mb,threads,kbps_min,kbps_median,loss_pct,"
                        "sample_decoded_frames,viewer,gen_cpu_s_per_s,gen_threads,sample_decrypted,sample_received");
  bool failed = false;
  struct Fit {
    double cpu_pct = NAN, mb = NAN, thr = NAN, kbps = NAN;
  };
  std::vector<std::pair<std::string, Fit>> fits;
  for (auto &mode : o.modes) {
    std::string stopped;
    auto rs = run_mode(o, mode, &stopped);
    std::vector<double> n, cpu, rss, thr;
    double kbps_sum = 0;
    int kbps_n = 0;
    for (auto &r : rs) {
      csv.row(fmt("%s,%d,%d,%.2f,%.4f,%.2f,%d,%.1f,%.1f,%.4f,%" G_GUINT64_FORMAT ",%s,%.4f,%d,%" G_GUINT64_FORMAT
                  ",%" G_GUINT64_FORMAT,
                  mode.c_str(), r.n, r.connected, r.setup_s, r.cpu, r.rss, r.threads, r.kbps_min, r.kbps_med,
                  r.loss_pct, r.frames, o.viewer.c_str(), r.gen_cpu, r.gen_threads, r.decrypted, r.received));
      n.push_back(r.n), cpu.push_back(r.cpu), rss.push_back(r.rss), thr.push_back(r.threads);
      if (r.n > 0 && !std::isnan(r.kbps_med)) kbps_sum += r.kbps_med, kbps_n++;
    }
    // CPU per viewer only means something while every viewer still gets the
    // stream: steps where the median delivered bitrate fell below 90 % of the
    // 1 Mbit/s offered (machine saturated) are left out of the CPU slope.
    std::vector<double> vn, vcpu;
    for (auto &r : rs)
      if (r.n == 0 || r.kbps_med >= 900) vn.push_back(r.n), vcpu.push_back(r.cpu);
    printf("%s: CPU slope over the %zu unsaturated steps (N<=%.0f): %.4f %% of a core per viewer\n", mode.c_str(),
           vn.size(), vn.empty() ? 0.0 : vn.back(), bench::slope(vn, vcpu) * 100);
    Fit f;
    f.cpu_pct = bench::slope(vn, vcpu) * 100;
    f.mb = bench::slope(n, rss);
    f.thr = bench::slope(n, thr);
    f.kbps = kbps_n ? kbps_sum / kbps_n : NAN;
    fits.push_back({mode, f});
    std::vector<double> gn, gcpu, gthr;
    for (auto &r : rs)
      if (r.n > 0 && !std::isnan(r.gen_cpu)) gn.push_back(r.n), gcpu.push_back(r.gen_cpu), gthr.push_back(r.gen_threads);
    if (!gn.empty())
      printf("%s: load generators (%s viewers): %.4f %% of a core and %.2f threads per viewer (slope over %zu "
             "steps); at N=%.0f: %.3f CPU s/s, %.0f threads\n",
             mode.c_str(), o.viewer.c_str(), bench::slope(gn, gcpu) * 100, bench::slope(gn, gthr), gn.size(),
             gn.back(), gcpu.back(), gthr.back());
    printf("%s: slope over N=%d..%d: CPU (unsaturated steps) %.4f %% of a core, %.3f MB, %.2f threads per viewer; median delivered %.0f "
           "kbit/s; %s\n",
           mode.c_str(), rs.empty() ? 0 : rs.front().n, rs.empty() ? 0 : rs.back().n, f.cpu_pct, f.mb, f.thr, f.kbps,
           stopped.empty() ? "all steps done" : stopped.c_str());
    fflush(stdout);
    if (rs.size() < 2) failed = true;
  }
  if (fits.size() == 2)
    printf("ratio %s/%s per viewer: cpu %.2f  MB %.2f  threads %.2f\n", fits[0].first.c_str(),
           fits[1].first.c_str(), fits[0].second.cpu_pct / fits[1].second.cpu_pct,
           fits[0].second.mb / fits[1].second.mb, fits[0].second.thr / fits[1].second.thr);
  return failed ? 1 : 0;
}
