// Which of the packets a viewer NACKs (RFC 4585 generic NACK) it gets again,
// on the direct path (viewer-session.h answers NACKs from the fan-out's
// shared history).
//
// Why: every NACKed packet found in the history used to be resent at once,
// however often it was asked for. One SRTCP packet of ~1.2 kB can name some
// 5000 packets (300 PID/BLP pairs), so a viewer, buggy or hostile, that
// NACKs in a loop had the relay resend as fast as it asked: thousands of
// times what it sent it, on the fan-out's CPU. And receivers that NACK a
// packet that is merely late (rtpjitterbuffer's rtx-next-seqnum default)
// got copies of packets already on their way. The rules:
//  * a packet is resent to a viewer at most once per round trip (never
//    sooner than kMinIntervalUs after its last resend), as libwebrtc's
//    packet history does;
//  * a packet handed to the viewer less than one round trip ago is not
//    resent: its loss cannot have been seen yet;
//  * resends are budgeted (libwebrtc caps its retransmission rate too): at
//    most one per two packets sent to the viewer, plus a burst of kBurst
//    (a keyframe lost whole is repaired at once).
// Refused requests are counted (the viewer's `retransmissions-refused`).
//
// Memory: nothing per viewer until its first NACK (most never send one).
#pragma once

#include <glib.h>

#include <array>
#include <memory>

namespace whipwhep {

class RetransmitGuard {
 public:
  static constexpr gint64 kMinIntervalUs = 5000;
  static constexpr double kBurst = 256;

  // `sent_total`: packets sent to the viewer so far (all legs), which fills
  // the budget; `handed_us`: when the packet went to the fan-out (monotonic
  // us); `rtt_us`: the viewer's round trip, < 0 if not known yet. Not
  // thread-safe: the caller serialises.
  bool allow(guint32 ssrc, guint16 seq, gint64 handed_us, gint64 now_us, gint64 rtt_us,
             guint64 sent_total);
  guint64 refused() const { return refused_; }

 private:
  struct Resent {
    guint32 ssrc = 0;
    guint16 seq = 0;
    gint64 at_us = 0;  // 0: never
  };
  static constexpr size_t kSlots = 128;
  std::unique_ptr<std::array<Resent, kSlots>> resent_;  // by seq % kSlots, made at the first NACK
  double tokens_ = kBurst;
  guint64 sent_seen_ = 0;
  guint64 refused_ = 0;
};

}  // namespace whipwhep
