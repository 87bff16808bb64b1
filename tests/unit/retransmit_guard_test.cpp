// The rules by which the direct path answers NACKs (gst/whep/retransmit-guard.h):
// once per round trip per packet, not before the packet could have been
// missed, and within a budget filled by what the viewer was sent.
#include <gtest/gtest.h>

#include "retransmit-guard.h"

using whipwhep::RetransmitGuard;

namespace {
constexpr guint32 kSsrc = 0x1234;
constexpr gint64 kMs = 1000;
}  // namespace

TEST(RetransmitGuard, APacketIsResentOncePerRoundTrip) {
  RetransmitGuard g;
  const gint64 rtt = 40 * kMs, handed = 1000 * kMs;
  gint64 now = handed + 100 * kMs;
  EXPECT_TRUE(g.allow(kSsrc, 7, handed, now, rtt, 100));
  // Asked again within the round trip: the first copy may still be on its way.
  EXPECT_FALSE(g.allow(kSsrc, 7, handed, now + 10 * kMs, rtt, 100));
  EXPECT_FALSE(g.allow(kSsrc, 7, handed, now + 39 * kMs, rtt, 100));
  EXPECT_TRUE(g.allow(kSsrc, 7, handed, now + 41 * kMs, rtt, 100));
  // Another packet, or the same sequence number of another stream, is not held back.
  EXPECT_TRUE(g.allow(kSsrc, 8, handed, now + 41 * kMs, rtt, 100));
  EXPECT_TRUE(g.allow(kSsrc + 1, 7, handed, now + 41 * kMs, rtt, 100));
  EXPECT_EQ(g.refused(), 2u);
}

TEST(RetransmitGuard, UnknownRoundTripStillSpacesResendsOfOnePacket) {
  RetransmitGuard g;
  const gint64 handed = 1000 * kMs, now = handed + 1 * kMs;
  // No RTT yet: a fresh packet may be resent (a loss seen on a fast path)...
  EXPECT_TRUE(g.allow(kSsrc, 1, handed, now, -1, 10));
  // ...but not again sooner than the floor.
  EXPECT_FALSE(g.allow(kSsrc, 1, handed, now + RetransmitGuard::kMinIntervalUs - 1, -1, 10));
  EXPECT_TRUE(g.allow(kSsrc, 1, handed, now + RetransmitGuard::kMinIntervalUs, -1, 10));
}

TEST(RetransmitGuard, APacketHandedOutLessThanARoundTripAgoIsNotResent) {
  RetransmitGuard g;
  const gint64 rtt = 50 * kMs, handed = 1000 * kMs;
  // A receiver that NACKs a packet merely late (rtpjitterbuffer's
  // rtx-next-seqnum) asks before the packet can have been missed.
  EXPECT_FALSE(g.allow(kSsrc, 3, handed, handed + 20 * kMs, rtt, 10));
  EXPECT_TRUE(g.allow(kSsrc, 3, handed, handed + 51 * kMs, rtt, 10));
  EXPECT_EQ(g.refused(), 1u);
}

TEST(RetransmitGuard, ResendsStayWithinHalfOfWhatWasSentPlusABurst) {
  RetransmitGuard g;
  const gint64 rtt = 10 * kMs;
  gint64 now = 10000 * kMs;
  // A viewer NACKing everything, again and again, with nothing new sent:
  // the burst, then nothing.
  guint allowed = 0;
  for (int round = 0; round < 20; round++, now += 20 * kMs)
    for (guint16 seq = 0; seq < 100; seq++)
      allowed += g.allow(kSsrc, guint16(round * 100 + seq), 0, now, rtt, 0);
  EXPECT_EQ(allowed, guint(RetransmitGuard::kBurst));
  // 1000 more packets sent fill 500 tokens, capped at the burst.
  allowed = 0;
  for (guint16 seq = 0; seq < 1000; seq++)
    allowed += g.allow(kSsrc, guint16(5000 + seq), 0, now, rtt, 1000);
  EXPECT_EQ(allowed, guint(RetransmitGuard::kBurst));
  // 100 more sent: 50 more resends.
  allowed = 0;
  for (guint16 seq = 0; seq < 100; seq++)
    allowed += g.allow(kSsrc, guint16(7000 + seq), 0, now, rtt, 1100);
  EXPECT_EQ(allowed, 50u);
  EXPECT_EQ(g.refused(), 2000u - 256u + 1000u - 256u + 50u);
}
