// One WHIP publisher of whipserversrc: its webrtcbin, the depayloading
// chains its streams feed (webrtcbin.src_N -> depayloader [-> parser] ->
// capsfilter) and the watchdog state that decides it is gone. The element
// owns the session map, HTTP routing and its persistent src pads, which it
// retargets onto a session's chain outputs.
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "gobj.h"
#include "publish-offer.h"

namespace whipwhep {

struct Chain {
  std::vector<gobj::Ref<GstElement>> elements;
  gobj::Ref<GstPad> src;         // output of the chain (a ghost pad's target)
  gobj::Ref<GstPad> webrtc_pad;  // webrtcbin's src pad feeding it
  std::string output;
};

struct PublisherSession {
  std::string id;
  std::string etag;
  std::string remote_ufrag;
  gobj::Ref<GstElement> webrtcbin;
  std::vector<MlinePlan> plan;
  std::mutex lock;  // chains
  std::vector<Chain> chains;
  std::atomic<bool> closing{false};
  std::atomic<bool> announced{false};  // publisher-connected emitted
  std::atomic<gint64> first_output{0};  // when the first stream reached its src pad
  std::atomic<gint64> created{0};
  std::atomic<gint64> last_media{0};
  std::atomic<gint64> ice_bad_since{0};  // disconnected since, 0 = fine
  std::atomic<bool> ice_failed{false};
  // Last RTP this long ago: the publisher is gone (whipserversrc's
  // publisher-timeout). Set once, before the watchdog sees the session.
  gint64 media_timeout_us = 15 * G_USEC_PER_SEC;

  // From webrtcbin's ICE / peer-connection state notifications.
  void update_ice_state();
  // Every accepted stream has reached its src pad, or the first one did
  // long enough ago (a publisher may announce a track it never sends).
  bool ready_to_announce(gint64 now_us) {
    size_t accepted = 0;
    for (const auto &p : plan) accepted += p.accepted ? 1 : 0;
    std::lock_guard<std::mutex> l(lock);
    if (chains.empty()) return false;
    return chains.size() >= accepted || now_us - first_output.load() > 2 * G_USEC_PER_SEC;
  }
  // Why the watchdog should end this session now, or nullptr.
  const char *gone_reason(gint64 now_us) const;

  // A stream of an m-line we did not accept: never leave a webrtcbin pad
  // unlinked (not-linked stops the shared bundled transport), sink it.
  void sink_unexpected_stream(GstBin *bin, GstPad *pad);

  enum class ChainError { None, MissingElement, LinkFailed };
  // Builds, adds to `bin`, tracks and links the chain for `p` from webrtcbin
  // pad `pad`; its output pad (chain->src) drops EOS/flushes and everything
  // once the session is closing, and counts media for the watchdog.
  // On error `what` names the missing element or the codec.
  ChainError build_chain(GstBin *bin, const MlinePlan &p, GstPad *pad, Chain *chain,
                         std::string *what);
};

}  // namespace whipwhep
