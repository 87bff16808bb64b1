// RTCP of a WHEP viewer whose webrtcbin has been released (viewer-session.h).
//
// Why: on the direct path (direct-send.h) a viewer's webrtcbin, once its
// DTLS handshake is over, only did RTCP: rtpsession's SRs, and the viewer's
// receiver reports and feedback through srtpdec and rtpbin. For that it kept
// ~40 elements, three threads (its main loop, the transport receive queue,
// rtpsession's RTCP thread) and ~0.3 MB per viewer. This does the same work
// with no thread or element of its own, on the viewer's shared ICE agent's
// thread (shared-ice.h): the agent's receive callback for the viewer's
// component decrypts its SRTCP (SrtpProtector::unprotect_rtcp, the viewer's
// keys) and hands RR, PLI/FIR, NACK and BYE to the session; one timer per
// agent context sends, every second, each of its viewers' SRs (with the
// SDES CNAME webrtcbin used) through the direct path. One timer for all of
// an agent's viewers, not one each: every wakeup of the agent's main loop
// is a pass over all the sources of its context (GLib's prepare and
// check), which was most of the agent threads' time at N=500 (perf).
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "direct-send.h"
#include "fanout.h"
#include "gobj.h"
#include "srtp-protect.h"

namespace whipwhep {

class DirectRtcp {
 public:
  struct Leg {
    std::shared_ptr<Fanout::Branch> branch;
    guint clock_rate = 90000;
    gobj::Ref<GstElement> clock_element;  // in the pipeline: its running time now
  };
  // Called on the agent's thread; must not block.
  struct Hooks {
    std::function<void()> on_report;  // any authentic SRTCP packet from the viewer
    std::function<void(guint32 media_ssrc)> on_keyframe_request;  // PLI or FIR
    std::function<void(guint32 media_ssrc, const guint8 *fci, gsize len)> on_nack;
    std::function<void()> on_bye;
  };
  struct Setup {
    std::shared_ptr<DirectSender> sender;  // its agent and stream, and the SR path
    gobj::Ref<GObject> ice;                // webrtcbin's ICE object: keeps the stream
    std::vector<guint8> viewer_key;        // the viewer's SRTP master key + salt (30 bytes)
    gsize rtcp_tag_len = 10;
    std::string cname;
    std::vector<Leg> legs;
  };

  // Takes over the viewer's ICE component (its receive callback) and starts
  // the SR timer; nullptr and a reason if it cannot.
  static std::shared_ptr<DirectRtcp> start(Setup setup, Hooks hooks, std::string *why);
  class Ticker;  // direct-rtcp.cpp
  ~DirectRtcp();
  DirectRtcp(const DirectRtcp &) = delete;
  DirectRtcp &operator=(const DirectRtcp &) = delete;

  // Detaches from the agent; returns once no callback of this runs. The
  // ICE stream goes with the last reference to `ice`.
  void stop();

  double rtt() const { return rtt_.load(); }  // seconds, -1 until a report echoes an SR
  guint nacks() const { return nacks_.load(); }
  guint64 reports() const { return reports_.load(); }
  guint64 rejected() const { return rejected_.load(); }  // SRTCP that failed authentication

 private:
  DirectRtcp() = default;
  static void on_receive(NiceAgent *, guint, guint, guint len, gchar *data, gpointer self);
  void handle(const guint8 *packet, gsize len);
  void send_reports();

  Setup setup_;
  Hooks hooks_;
  SrtpProtector viewer_srtcp_;  // the agent's thread only
  gobj::Ref<GMainContext> context_;
  std::shared_ptr<Ticker> ticker_;
  bool attached_ = false;
  std::atomic<double> rtt_{-1};
  std::atomic<guint> nacks_{0};
  std::atomic<guint64> reports_{0}, rejected_{0};
};

}  // namespace whipwhep
