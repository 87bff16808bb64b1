#include "viewer-client.h"

#include <gst/rtp/rtp.h>
#include <gst/webrtc/webrtc.h>
#include <libsoup/soup.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "bench-util.h"
#include "gobj.h"
#include "ice.h"
#include "webrtc-negotiation.h"

namespace bench {
namespace {

// POSTs run on a few plain threads with one SoupSession each (sync API), so
// that no signalling ever waits on a streaming or webrtcbin thread.
class HttpWorkers {
 public:
  using Job = std::function<void(SoupSession *)>;
  static HttpWorkers &get() {
    static HttpWorkers *w = new HttpWorkers(4);
    return *w;
  }
  void push(Job job) {
    std::lock_guard<std::mutex> l(lock_);
    jobs_.push_back(std::move(job));
    cv_.notify_one();
  }
  void shutdown() {
    {
      std::lock_guard<std::mutex> l(lock_);
      quit_ = true;
      cv_.notify_all();
    }
    for (auto &t : threads_) t.join();
    threads_.clear();
  }

 private:
  explicit HttpWorkers(int n) {
    for (int i = 0; i < n; i++)
      threads_.emplace_back([this] {
        SoupSession *s = soup_session_new_with_options("timeout", 15u, "max-conns", 64, nullptr);
        for (;;) {
          Job job;
          {
            std::unique_lock<std::mutex> l(lock_);
            cv_.wait(l, [this] { return quit_ || !jobs_.empty(); });
            if (quit_) break;
            job = std::move(jobs_.front());
            jobs_.pop_front();
          }
          job(s);
        }
        g_object_unref(s);
      });
  }
  std::mutex lock_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  std::vector<std::thread> threads_;
  bool quit_ = false;
};

GstPadProbeReturn rtp_probe(GstPad *, GstPadProbeInfo *info, gpointer data) {
  auto *v = static_cast<Viewer *>(data);
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
    v->on_rtp(GST_PAD_PROBE_INFO_BUFFER(info));
  } else if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST) {
    GstBufferList *l = GST_PAD_PROBE_INFO_BUFFER_LIST(info);
    for (guint i = 0; i < gst_buffer_list_length(l); i++) v->on_rtp(gst_buffer_list_get(l, i));
  }
  return GST_PAD_PROBE_OK;
}

GstPadProbeReturn frame_probe(GstPad *, GstPadProbeInfo *, gpointer data) {
  static_cast<Viewer *>(data)->on_frame();
  return GST_PAD_PROBE_OK;
}

}  // namespace

void shutdown_http_workers() { HttpWorkers::get().shutdown(); }

bool SeqTracker::add(guint16 seq) {
  if (!have_) {
    have_ = true;
    first_ = max_ext_ = seq;
    return true;
  }
  // Extend 16-bit seq around max_ext_.
  guint32 cand = (max_ext_ & 0xffff0000u) | seq;
  if (cand + 0x8000u < max_ext_) cand += 0x10000u;
  else if (cand > max_ext_ + 0x8000u && cand >= 0x10000u) cand -= 0x10000u;
  if (cand > max_ext_) max_ext_ = cand;
  return false;
}

void http_post_sdp(const std::string &url, const std::string &sdp, std::function<void(HttpReply)> done) {
  HttpWorkers::get().push([url, sdp, done](SoupSession *s) {
    HttpReply r;
    gobj::Ref<SoupMessage> msg = gobj::adopt(soup_message_new("POST", url.c_str()));
    if (!msg) {
      r.error = "bad URL " + url;
      done(std::move(r));
      return;
    }
    {
      gobj::Ref<GBytes> body = gobj::adopt(g_bytes_new(sdp.data(), sdp.size()));
      soup_message_set_request_body_from_bytes(msg.get(), "application/sdp", body.get());
    }
    r.t_post = now_ms();
    gobj::Unique<GError> err;
    gobj::Ref<GBytes> resp = gobj::adopt(soup_session_send_and_read(s, msg.get(), nullptr, gobj::out(err)));
    r.t_answer = now_ms();
    r.status = soup_message_get_status(msg.get());
    if (resp) {
      gsize n = 0;
      const char *d = static_cast<const char *>(g_bytes_get_data(resp.get(), &n));
      r.body.assign(d ? d : "", n);
    }
    if (const char *loc = soup_message_headers_get_one(soup_message_get_response_headers(msg.get()), "Location")) {
      gobj::Unique<GUri> abs(g_uri_parse_relative(soup_message_get_uri(msg.get()), loc, GUriFlags(SOUP_HTTP_URI_FLAGS), nullptr));
      r.location = abs ? gobj::Unique<gchar>(g_uri_to_string(abs.get())).get() : loc;
    }
    if (err) r.error = err->message;
    done(std::move(r));
  });
}

void http_delete(const std::string &url) {
  HttpWorkers::get().push([url](SoupSession *s) {
    gobj::Ref<SoupMessage> msg = gobj::adopt(soup_message_new("DELETE", url.c_str()));
    if (!msg) return;
    gobj::Ref<GBytes> resp = gobj::adopt(soup_session_send_and_read(s, msg.get(), nullptr, nullptr));
  });
}

Viewer::Viewer(GstElement *pipeline, std::string endpoint, bool decode)
    : pipeline_(pipeline), endpoint_(std::move(endpoint)), decode_(decode) {}

Viewer::~Viewer() { stop(); }

void Viewer::stop() {
  if (!wb_) return;
  g_signal_handlers_disconnect_by_data(wb_, this);
  gst_element_set_state(wb_, GST_STATE_NULL);
  gst_bin_remove(GST_BIN(pipeline_), wb_);
  wb_ = nullptr;
}

guint64 Viewer::lost() const {
  std::lock_guard<std::mutex> l(lock_);
  guint64 expected = seq_.expected();
  guint64 got = packets_;
  return expected > got ? expected - got : 0;
}

bool Viewer::failed() const {
  std::lock_guard<std::mutex> l(lock_);
  return !error_.empty();
}
std::string Viewer::error() const {
  std::lock_guard<std::mutex> l(lock_);
  return error_;
}
ViewerTimes Viewer::times() const {
  std::lock_guard<std::mutex> l(lock_);
  return t_;
}

void Viewer::fail(const std::string &why) {
  std::lock_guard<std::mutex> l(lock_);
  if (error_.empty()) error_ = why;
}

void Viewer::on_rtp(GstBuffer *buf) {
  GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
  if (!gst_rtp_buffer_map(buf, GST_MAP_READ, &rtp)) return;
  guint16 seq = gst_rtp_buffer_get_seq(&rtp);
  gst_rtp_buffer_unmap(&rtp);
  bytes_ += gst_buffer_get_size(buf);
  packets_++;
  std::lock_guard<std::mutex> l(lock_);
  if (seq_.add(seq)) {
    t_.first_rtp = now_ms();
    first_rtp_seen_ = true;
  }
}

void Viewer::on_frame() {
  if (frames_++ == 0) {
    std::lock_guard<std::mutex> l(lock_);
    t_.first_frame = now_ms();
  }
}

void Viewer::pad_added(GstPad *pad) {
  if (GST_PAD_DIRECTION(pad) != GST_PAD_SRC) return;
  gst_pad_add_probe(pad, GstPadProbeType(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST), rtp_probe,
                    this, nullptr);
  GstElement *sink = gst_element_factory_make("fakesink", nullptr);
  g_object_set(sink, "sync", FALSE, "async", FALSE, nullptr);
  std::vector<GstElement *> chain;
  if (decode_) {
    chain.push_back(gst_element_factory_make("rtpvp8depay", nullptr));
    chain.push_back(gst_element_factory_make("vp8dec", nullptr));
  }
  chain.push_back(sink);
  for (auto *e : chain) gst_bin_add(GST_BIN(pipeline_), e);
  for (size_t i = 0; i + 1 < chain.size(); i++) gst_element_link(chain[i], chain[i + 1]);
  if (decode_) {
    GstPad *sp = gst_element_get_static_pad(sink, "sink");
    gst_pad_add_probe(sp, GST_PAD_PROBE_TYPE_BUFFER, frame_probe, this, nullptr);
    gst_object_unref(sp);
  }
  for (auto *e : chain) gst_element_sync_state_with_parent(e);
  GstPad *sinkpad = gst_element_get_static_pad(chain[0], "sink");
  if (gst_pad_link(pad, sinkpad) != GST_PAD_LINK_OK) fail("cannot link webrtcbin src pad");
  gst_object_unref(sinkpad);
}

void Viewer::start() {
  wb_ = gst_element_factory_make("webrtcbin", nullptr);
  g_object_set(wb_, "bundle-policy", GST_WEBRTC_BUNDLE_POLICY_MAX_BUNDLE, "latency", 40u, nullptr);
  whipwhep::IceSettings ice;
  ice.local_addresses = {"127.0.0.1"};
  whipwhep::configure_ice(wb_, ice);
  gst_bin_add(GST_BIN(pipeline_), wb_);
  g_signal_connect(wb_, "pad-added", G_CALLBACK(+[](GstElement *, GstPad *pad, gpointer d) {
                     static_cast<Viewer *>(d)->pad_added(pad);
                   }),
                   this);
  GstCaps *caps = gst_caps_from_string(
      "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000,"
      "rtcp-fb-nack=(boolean)true,rtcp-fb-nack-pli=(boolean)true,rtcp-fb-ccm-fir=(boolean)true");
  GstWebRTCRTPTransceiver *trans = nullptr;
  g_signal_emit_by_name(wb_, "add-transceiver", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_RECVONLY, caps, &trans);
  gst_caps_unref(caps);
  if (trans) gst_object_unref(trans);
  gst_element_sync_state_with_parent(wb_);
  whipwhep::make_offer(wb_, [this](bool ok, std::string sdp) {
    if (!ok) {
      fail("offer: " + sdp);
      return;
    }
    offer_sent = true;
    http_post_sdp(endpoint_, sdp, [this](HttpReply r) {
      {
        std::lock_guard<std::mutex> l(lock_);
        t_.post = r.t_post, t_.answer = r.t_answer;
      }
      if (!r.error.empty()) {
        fail("POST: " + r.error);
        return;
      }
      on_answer(r.status, r.body);
    });
  });
}

void Viewer::on_answer(guint status, const std::string &body) {
  if (status != 201) {
    fail("POST answered " + std::to_string(status) + ": " + body.substr(0, 200));
    return;
  }
  std::string err;
  GstSDPMessage *answer = whipwhep::parse_sdp(body, &err);
  if (!answer || !wb_) {
    fail("answer: " + err);
    return;
  }
  whipwhep::apply_answer(wb_, answer, [this](bool ok, std::string why) {
    if (!ok) fail("set-remote-description: " + why);
  });
}

}  // namespace bench
