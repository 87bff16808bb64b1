// glass_to_glass: capture -> encode -> whipsink -> relay -> whepsrc -> decode,
// per frame, read back from the picture itself.
//
// The publisher draws a 16-bit frame counter into every raw 1280x720 frame as
// 16 large black/white luma blocks (and their complement on a second row, so a
// damaged read is detected and skipped), and records the capture time of each
// counter value. The player reads the counter back from each decoded frame on
// a pad probe; latency = decode-out time - capture time (one clock: both
// pipelines run in this process; the relay is a child process,
// whipwhep-bench-relay, which also measures its own added latency).
#include <gst/gst.h>
#include <gst/video/video.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bench-util.h"

namespace {

constexpr int kW = 1280, kH = 720, kBits = 16, kBlock = 80;

struct Shared {
  std::mutex lock;
  guint counter = 0;
  std::map<guint, double> captured;  // counter -> capture ms
  std::vector<double> latencies;
  double measure_from = 0, measure_until = 0;
  guint decoded = 0, unreadable = 0;
};

void draw(GstVideoFrame *f, guint value) {
  guint8 *y = static_cast<guint8 *>(GST_VIDEO_FRAME_PLANE_DATA(f, 0));
  int stride = GST_VIDEO_FRAME_PLANE_STRIDE(f, 0);
  for (int row = 0; row < 2; row++)
    for (int b = 0; b < kBits; b++) {
      bool bit = (value >> b) & 1;
      if (row == 1) bit = !bit;
      guint8 luma = bit ? 235 : 16;
      for (int yy = row * kBlock; yy < (row + 1) * kBlock; yy++)
        memset(y + yy * stride + b * kBlock, luma, kBlock);
    }
}

// Returns false if any bit is ambiguous (row and complement row disagree).
bool read_counter(GstVideoFrame *f, guint *value) {
  const guint8 *y = static_cast<const guint8 *>(GST_VIDEO_FRAME_PLANE_DATA(f, 0));
  int stride = GST_VIDEO_FRAME_PLANE_STRIDE(f, 0);
  if (GST_VIDEO_FRAME_WIDTH(f) < kW || GST_VIDEO_FRAME_HEIGHT(f) < 2 * kBlock) return false;
  guint v = 0;
  for (int b = 0; b < kBits; b++) {
    double mean[2];
    for (int row = 0; row < 2; row++) {
      long sum = 0;
      int n = 0;
      for (int yy = row * kBlock + 20; yy < row * kBlock + 60; yy += 2)
        for (int xx = b * kBlock + 20; xx < b * kBlock + 60; xx += 2) sum += y[yy * stride + xx], n++;
      mean[row] = double(sum) / n;
    }
    bool b0 = mean[0] > 125, b1 = mean[1] > 125;
    if (b0 == b1) return false;
    if (b0) v |= 1u << b;
  }
  *value = v;
  return true;
}

GstPadProbeReturn capture_probe(GstPad *pad, GstPadProbeInfo *info, gpointer data) {
  auto *s = static_cast<Shared *>(data);
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
  GstCaps *caps = gst_pad_get_current_caps(pad);
  GstVideoInfo vi;
  bool ok = caps && gst_video_info_from_caps(&vi, caps);
  if (caps) gst_caps_unref(caps);
  if (!ok) return GST_PAD_PROBE_OK;
  buf = gst_buffer_make_writable(buf);
  GST_PAD_PROBE_INFO_DATA(info) = buf;
  GstVideoFrame f;
  if (!gst_video_frame_map(&f, &vi, buf, GST_MAP_WRITE)) return GST_PAD_PROBE_OK;
  std::lock_guard<std::mutex> l(s->lock);
  guint value = s->counter++ & 0xffff;
  draw(&f, value);
  gst_video_frame_unmap(&f);
  s->captured[value] = bench::now_ms();
  return GST_PAD_PROBE_OK;
}

GstPadProbeReturn display_probe(GstPad *pad, GstPadProbeInfo *info, gpointer data) {
  double now = bench::now_ms();
  auto *s = static_cast<Shared *>(data);
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
  GstCaps *caps = gst_pad_get_current_caps(pad);
  GstVideoInfo vi;
  bool ok = caps && gst_video_info_from_caps(&vi, caps);
  if (caps) gst_caps_unref(caps);
  if (!ok) return GST_PAD_PROBE_OK;
  GstVideoFrame f;
  if (!gst_video_frame_map(&f, &vi, buf, GST_MAP_READ)) return GST_PAD_PROBE_OK;
  guint value = 0;
  bool readable = read_counter(&f, &value);
  gst_video_frame_unmap(&f);
  std::lock_guard<std::mutex> l(s->lock);
  s->decoded++;
  if (!readable) {
    s->unreadable++;
    return GST_PAD_PROBE_OK;
  }
  auto it = s->captured.find(value);
  if (it == s->captured.end()) return GST_PAD_PROBE_OK;
  double lat = now - it->second;
  if (now >= s->measure_from && now < s->measure_until && lat >= 0 && lat < 10000) s->latencies.push_back(lat);
  return GST_PAD_PROBE_OK;
}

struct Options {
  double seconds = 30, warmup = 3;
  std::vector<std::string> modes{"ours", "naive"}, codecs{"vp8", "h264"};
  std::string csv = "glass_to_glass.csv";
  int bitrate_kbps = 2000;
  int extra_viewers = 0;  // lean WHEP viewers attached to the same input during the run
  int viewers_per_gen = 250;
  // The measured viewer joins before the extra viewers instead of after
  // them: a fan-out sender serves its viewers in join order, so this shows
  // what the position in that order costs (the window still starts once
  // all are connected).
  bool measured_first = false;
};

std::vector<std::string> split(const std::string &s) {
  std::vector<std::string> out;
  gchar **parts = g_strsplit(s.c_str(), ",", -1);
  for (gchar **p = parts; *p; p++)
    if (**p) out.push_back(*p);
  g_strfreev(parts);
  return out;
}

// Parses `desc`, puts `probe` (with `data`) on the `pad` pad of its element
// `name` and sets it playing; null and *error if it does not parse.
GstElement *launch_probed(const std::string &desc, const char *name, const char *pad,
                          GstPadProbeCallback probe, gpointer data, std::string *error) {
  GError *err = nullptr;
  GstElement *pipe = gst_parse_launch(desc.c_str(), &err);
  if (!pipe) {
    *error = err ? err->message : desc;
    g_clear_error(&err);
    return nullptr;
  }
  GstElement *e = gst_bin_get_by_name(GST_BIN(pipe), name);
  GstPad *p = gst_element_get_static_pad(e, pad);
  gst_pad_add_probe(p, GST_PAD_PROBE_TYPE_BUFFER, probe, data, nullptr);
  gst_object_unref(p);
  gst_object_unref(e);
  gst_element_set_state(pipe, GST_STATE_PLAYING);
  return pipe;
}

bool pump_until(GstElement *pipe_a, GstElement *pipe_b, double until_ms, std::string *error) {
  GstElement *pipes[2] = {pipe_a, pipe_b};
  while (bench::now_ms() < until_ms) {
    for (GstElement *p : pipes) {
      if (!p) continue;
      GstBus *bus = gst_element_get_bus(p);
      GstMessage *m;
      while ((m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR))) {
        GError *e = nullptr;
        gst_message_parse_error(m, &e, nullptr);
        *error = std::string(GST_OBJECT_NAME(m->src)) + ": " + e->message;
        g_error_free(e);
        gst_message_unref(m);
        gst_object_unref(bus);
        return false;
      }
      gst_object_unref(bus);
    }
    g_usleep(20000);
  }
  return true;
}

struct Result {
  std::string mode, codec;
  size_t n = 0;
  guint decoded = 0, unreadable = 0;
  double p50 = NAN, p95 = NAN, p99 = NAN;
  std::string relay_line, error;
  int extra_connected = 0;
};

bool have(const char *factory) {
  GstElementFactory *f = gst_element_factory_find(factory);
  if (f) gst_object_unref(f);
  return f != nullptr;
}

Result run_one(const Options &o, const std::string &mode, const std::string &codec) {
  Result r;
  r.mode = mode, r.codec = codec;
  guint whip = bench::free_port(), whep = bench::free_port();
  bench::Child relay({bench::self_dir() + "/whipwhep-bench-relay", "--mode=" + mode,
                      "--whip-port=" + std::to_string(whip), "--whep-port=" + std::to_string(whep),
                      "--probe-latency", "--max-seconds=" + std::to_string(int(o.seconds + o.warmup + 60))});
  if (relay.wait_line("ready", 10).empty()) {
    r.error = "relay did not start";
    return r;
  }
  Shared s;
  std::string enc = codec == "vp8"
                        ? bench::fmt("vp8enc deadline=1 cpu-used=8 end-usage=cbr target-bitrate=%d "
                                     "keyframe-max-dist=60 lag-in-frames=0 threads=2 error-resilient=1",
                                     o.bitrate_kbps * 1000)
                        : have("x264enc")
                              ? bench::fmt("x264enc tune=zerolatency speed-preset=ultrafast bitrate=%d "
                                           "key-int-max=60 ! video/x-h264,profile=constrained-baseline ! h264parse",
                                           o.bitrate_kbps)
                              : bench::fmt("openh264enc bitrate=%d complexity=low rate-control=bitrate gop-size=60 "
                                           "usage-type=camera ! h264parse",
                                           o.bitrate_kbps * 1000);
  std::string pub_desc = bench::fmt(
      "videotestsrc is-live=true pattern=smpte horizontal-speed=4 name=cam ! video/x-raw,format=I420,width=%d,height=%d,framerate=30/1 "
      "! %s ! whipsink name=whip whip-endpoint=http://127.0.0.1:%u/whip ice-addresses=127.0.0.1",
      kW, kH, enc.c_str(), whip);
  std::string play_desc = bench::fmt(
      "whepsrc name=play whep-endpoint=http://127.0.0.1:%u/whep ice-addresses=127.0.0.1 audio=false "
      "video-codecs=%s ! video/x-raw ! fakesink name=screen sync=false async=false",
      whep, codec.c_str());
  GstElement *pub = launch_probed(pub_desc, "cam", "src", capture_probe, &s, &r.error);
  if (!pub) return r;
  GstElement *play = nullptr;
  // Nothing is measured until the window is set, once the extras are in.
  auto start_player = [&] {
    play = launch_probed(play_desc, "screen", "sink", display_probe, &s, &r.error);
    return play != nullptr;
  };
  // The load the latency must hold under: --extra-viewers lean viewers
  // (fanout's load generators, see fanout.cpp) on the same input, connected
  // before the measured viewer starts (unless --measured-first), receiving
  // for the whole window.
  std::vector<std::unique_ptr<bench::Child>> gens;
  bool loaded = pump_until(pub, nullptr, bench::now_ms() + 2000, &r.error);
  if (loaded && o.measured_first) loaded = start_player() && pump_until(pub, play, bench::now_ms() + 2000, &r.error);
  for (int left = o.extra_viewers; loaded && left > 0;) {
    const int k = std::min(left, o.viewers_per_gen);
    gens.push_back(std::make_unique<bench::Child>(std::vector<std::string>{
        bench::self_dir() + "/fanout", bench::fmt("--gen=http://127.0.0.1:%u/whep", whep), "--viewer=lean"}));
    if (gens.back()->wait_line("ready", 10).empty()) {
      r.error = "a load generator did not start";
      loaded = false;
      break;
    }
    gens.back()->write_line(bench::fmt("add %d 120", k));
    left -= k;
  }
  for (auto &g : gens) {
    if (!loaded) break;
    std::string l = g->wait_line("added", 150);
    int total = 0, c = 0, f = 0;
    if (sscanf(l.c_str(), "added total=%d connected=%d failed=%d", &total, &c, &f) < 3 || f > 0) {
      r.error = "extra viewers: " + (l.empty() ? std::string("no answer") : l);
      loaded = false;
    }
    r.extra_connected += c;
  }
  if (loaded && pump_until(pub, play, bench::now_ms() + 500, &r.error) && (play || start_player())) {
    double until;
    {
      std::lock_guard<std::mutex> l(s.lock);
      s.measure_from = bench::now_ms() + o.warmup * 1000;
      s.measure_until = until = s.measure_from + o.seconds * 1000;
    }
    pump_until(pub, play, until, &r.error);
  }
  if (play) gst_element_set_state(play, GST_STATE_NULL);
  gens.clear();
  gst_element_set_state(pub, GST_STATE_NULL);
  if (play) gst_object_unref(play);
  gst_object_unref(pub);
  for (auto &line : relay.stop(10))
    if (line.rfind("relay-latency", 0) == 0) r.relay_line = line;
  std::lock_guard<std::mutex> l(s.lock);
  r.n = s.latencies.size();
  r.decoded = s.decoded, r.unreadable = s.unreadable;
  r.p50 = bench::percentile(s.latencies, 50);
  r.p95 = bench::percentile(s.latencies, 95);
  r.p99 = bench::percentile(s.latencies, 99);
  return r;
}

double field(const std::string &line, const char *key) {
  auto pos = line.find(std::string(" ") + key + "=");
  if (pos == std::string::npos) return NAN;
  return g_ascii_strtod(line.c_str() + pos + strlen(key) + 2, nullptr);
}

}  // namespace

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  Options o;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--smoke") o.seconds = 4, o.warmup = 1, o.modes = {"ours"}, o.codecs = {"vp8"};
    else if (a.rfind("--seconds=", 0) == 0) o.seconds = std::stod(a.substr(10));
    else if (a.rfind("--modes=", 0) == 0) o.modes = split(a.substr(8));
    else if (a.rfind("--codecs=", 0) == 0) o.codecs = split(a.substr(9));
    else if (a.rfind("--csv=", 0) == 0) o.csv = a.substr(6);
    else if (a.rfind("--extra-viewers=", 0) == 0) o.extra_viewers = std::stoi(a.substr(16));
    else if (a == "--measured-first") o.measured_first = true;
    else {
      fprintf(stderr,
              "usage: %s [--smoke] [--seconds=30] [--modes=ours,naive] [--codecs=vp8,h264] [--extra-viewers=0] "
              "[--measured-first] [--csv=FILE]\n",
              argv[0]);
      return 2;
    }
  }
  printf("# glass_to_glass: 1280x720 30 fps %d kbit/s, %.0f s per run, %d other viewers attached; %s\n",
         o.bitrate_kbps, o.seconds, o.extra_viewers, bench::machine_description().c_str());
  bench::Csv csv(o.csv, "mode,codec,frames_measured,decoded,unreadable,g2g_p50_ms,g2g_p95_ms,g2g_p99_ms,"
                        "relay_frames,relay_p50_ms,relay_p95_ms,relay_p99_ms,extra_viewers,error");
  printf("%-6s %-5s %7s %8s %8s %8s | %8s %9s %9s %6s %s\n", "mode", "codec", "frames", "p50 ms", "p95 ms",
         "p99 ms", "relay n", "relay p50", "relay p99", "extra", "error");
  bool failed = false;
  std::map<std::string, Result> results;
  for (auto &codec : o.codecs)
    for (auto &mode : o.modes) {
      Result r = run_one(o, mode, codec);
      double rn = field(r.relay_line, "n"), r50 = field(r.relay_line, "p50"), r95 = field(r.relay_line, "p95"),
             r99 = field(r.relay_line, "p99");
      printf("%-6s %-5s %7zu %8.1f %8.1f %8.1f | %8.0f %9.2f %9.2f %6d %s\n", mode.c_str(), codec.c_str(), r.n,
             r.p50, r.p95, r.p99, rn, r50, r99, r.extra_connected, r.error.c_str());
      fflush(stdout);
      csv.row(bench::fmt("%s,%s,%zu,%u,%u,%.2f,%.2f,%.2f,%.0f,%.3f,%.3f,%.3f,%d,\"%s\"", mode.c_str(), codec.c_str(),
                         r.n, r.decoded, r.unreadable, r.p50, r.p95, r.p99, rn, r50, r95, r99, r.extra_connected,
                         r.error.c_str()));
      if (r.n == 0 || !r.error.empty()) failed = true;
      results[mode + "/" + codec] = r;
    }
  for (auto &codec : o.codecs) {
    auto a = results.find("ours/" + codec), b = results.find("naive/" + codec);
    if (a != results.end() && b != results.end())
      printf("ratio ours/naive %s: p50 %.2f  p99 %.2f\n", codec.c_str(), a->second.p50 / b->second.p50,
             a->second.p99 / b->second.p99);
  }
  return failed ? 1 : 0;
}
