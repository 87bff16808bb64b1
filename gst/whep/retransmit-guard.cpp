#include "retransmit-guard.h"

#include <algorithm>

namespace whipwhep {

bool RetransmitGuard::allow(guint32 ssrc, guint16 seq, gint64 handed_us, gint64 now_us,
                            gint64 rtt_us, guint64 sent_total) {
  if (sent_total > sent_seen_) {
    tokens_ = std::min(kBurst, tokens_ + double(sent_total - sent_seen_) / 2);
    sent_seen_ = sent_total;
  }
  if (!resent_) resent_ = std::make_unique<std::array<Resent, kSlots>>();
  Resent &slot = (*resent_)[seq % kSlots];
  const gint64 interval = std::max(rtt_us, kMinIntervalUs);
  const bool too_young = rtt_us > 0 && now_us - handed_us < rtt_us;
  const bool resent_lately =
      slot.at_us != 0 && slot.ssrc == ssrc && slot.seq == seq && now_us - slot.at_us < interval;
  if (too_young || resent_lately || tokens_ < 1) {
    refused_++;
    return false;
  }
  tokens_ -= 1;
  slot.ssrc = ssrc;
  slot.seq = seq;
  slot.at_us = now_us;
  return true;
}

}  // namespace whipwhep
