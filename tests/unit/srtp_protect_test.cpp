// The direct send path's SRTP (gst/whep/srtp-protect.h) against libsrtp, as
// every viewer runs it: packets we protect are decrypted by GStreamer's
// srtpdec with the same master key, across a sequence-number wrap (the
// rollover counter), with both tag lengths, a header extension and CSRCs.
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gobj.h"
#include "harness.h"
#include "srtp-protect.h"

using namespace whipwhep;

namespace {

std::vector<guint8> master_key() {
  std::vector<guint8> k(30);
  for (size_t i = 0; i < k.size(); i++) k[i] = guint8(i * 7 + 3);
  return k;
}

// An RTP packet with a recognisable payload; `csrcs` CSRCs and optionally a
// one-byte header extension.
std::vector<guint8> rtp_packet(guint16 seq, guint32 ssrc, size_t payload, int csrcs, bool ext) {
  std::vector<guint8> p;
  p.push_back(guint8(0x80 | (ext ? 0x10 : 0) | csrcs));
  p.push_back(96);
  p.push_back(guint8(seq >> 8));
  p.push_back(guint8(seq));
  for (int i = 0; i < 4; i++) p.push_back(guint8((seq * 90u) >> (24 - 8 * i)));
  for (int i = 0; i < 4; i++) p.push_back(guint8(ssrc >> (24 - 8 * i)));
  for (int c = 0; c < csrcs; c++)
    for (int i = 0; i < 4; i++) p.push_back(guint8(c + i));
  if (ext) {
    const guint8 e[] = {0xbe, 0xde, 0x00, 0x01, 0x10, 0xaa, 0x00, 0x00};
    p.insert(p.end(), e, e + sizeof e);
  }
  for (size_t i = 0; i < payload; i++) p.push_back(guint8(seq + i));
  return p;
}

// A compound RTCP packet as rtpsession sends it: an SR, then an SDES with
// the CNAME.
std::vector<guint8> rtcp_compound(guint32 ssrc, guint32 packets) {
  std::vector<guint8> p = {0x80, 200, 0x00, 0x06};  // SR, no report blocks, 7 words
  auto u32 = [&](guint32 v) {
    for (int i = 0; i < 4; i++) p.push_back(guint8(v >> (24 - 8 * i)));
  };
  u32(ssrc);
  u32(0xe1234567), u32(0x89abcdef);  // NTP time
  u32(packets * 3000), u32(packets), u32(packets * 1100);
  const char cname[] = "user1@host-12345";  // 16 bytes: SDES item 2 + 16 + end, padded
  p.insert(p.end(), {0x81, 202, 0x00, 0x06});
  u32(ssrc);
  p.push_back(1);
  p.push_back(guint8(sizeof cname - 1));
  p.insert(p.end(), cname, cname + sizeof cname - 1);
  while (p.size() % 4) p.push_back(0);  // the end of the items, then padding: 7 words
  return p;
}

struct Decryptor {
  gobj::Ref<GstElement> pipeline;
  gobj::Ref<GstElement> src, sink;

  // rtcp: decrypt SRTCP (srtpdec's RTCP pads) instead of SRTP.
  Decryptor(guint32 ssrc, const char *auth, bool rtcp = false) {
    pipeline = gobj::sink(gst_parse_launch(
        rtcp ? "appsrc name=src format=time is-live=true ! d.rtcp_sink srtpdec name=d "
               "d.rtcp_src ! appsink name=sink sync=false"
             : "appsrc name=src format=time is-live=true ! srtpdec ! appsink name=sink sync=false",
        nullptr));
    if (!pipeline) return;
    src = gobj::adopt(gst_bin_get_by_name(GST_BIN(pipeline.get()), "src"));
    sink = gobj::adopt(gst_bin_get_by_name(GST_BIN(pipeline.get()), "sink"));
    auto key = master_key();
    gobj::Ref<GstBuffer> kb = gobj::adopt(gst_buffer_new_memdup(key.data(), key.size()));
    gobj::Ref<GstCaps> caps = gobj::adopt(gst_caps_new_simple(
        rtcp ? "application/x-srtcp" : "application/x-srtp", "ssrc", G_TYPE_UINT, ssrc, "srtp-key", GST_TYPE_BUFFER, kb.get(),
        "srtp-cipher", G_TYPE_STRING, "aes-128-icm", "srtp-auth", G_TYPE_STRING, auth,
        "srtcp-cipher", G_TYPE_STRING, "aes-128-icm", "srtcp-auth", G_TYPE_STRING, auth,
        "media", G_TYPE_STRING, "video", "clock-rate", G_TYPE_INT, 90000, "encoding-name",
        G_TYPE_STRING, "VP8", "payload", G_TYPE_INT, 96, nullptr));
    g_object_set(src.get(), "caps", caps.get(), nullptr);
    gst_element_set_state(pipeline.get(), GST_STATE_PLAYING);
  }
  ~Decryptor() {
    if (pipeline) gst_element_set_state(pipeline.get(), GST_STATE_NULL);
  }
  void push(const guint8 *data, size_t len) {
    gst_app_src_push_buffer(GST_APP_SRC(src.get()), gst_buffer_new_memdup(data, len));
  }
  // The next decrypted packet, empty if none in time (srtpdec drops what
  // fails authentication).
  std::vector<guint8> pull(GstClockTime timeout = 2 * GST_SECOND) {
    gobj::Ref<GstSample> s =
        gobj::adopt(gst_app_sink_try_pull_sample(GST_APP_SINK(sink.get()), timeout));
    if (!s) return {};
    GstBuffer *b = gst_sample_get_buffer(s.get());
    std::vector<guint8> out(gst_buffer_get_size(b));
    gst_buffer_extract(b, 0, out.data(), out.size());
    return out;
  }
};

void round_trip(size_t tag_len, const char *auth, int csrcs, bool ext) {
  const guint32 ssrc = 0x11223344;
  Decryptor dec(ssrc, auth);
  ASSERT_TRUE(dec.pipeline) << "srtpdec (gst-plugins-bad) is missing";
  SrtpProtector p;
  auto key = master_key();
  ASSERT_TRUE(p.init(key.data(), key.size(), tag_len));
  // From just below the wrap to past it: the ROC goes 0 -> 1 on both sides.
  for (guint32 i = 0; i < 40; i++) {
    const guint16 seq = guint16(65520 + i);
    auto plain = rtp_packet(seq, ssrc, 200 + i, csrcs, ext);
    std::vector<guint8> wire(plain);
    wire.resize(plain.size() + SrtpProtector::kMaxTrailer);
    const size_t n = p.protect(wire.data(), plain.size(), wire.size());
    ASSERT_EQ(n, plain.size() + tag_len);
    // Encrypted: the payload differs from the plain text.
    ASSERT_NE(0, memcmp(wire.data() + plain.size() - 20, plain.data() + plain.size() - 20, 20));
    dec.push(wire.data(), n);
    auto out = dec.pull();
    ASSERT_EQ(out, plain) << "packet " << i << " (seq " << seq << ") did not decrypt";
  }
}

}  // namespace

TEST(SrtpProtect, Sha1_80DecryptsWithSrtpdecAcrossTheRollover) { round_trip(10, "hmac-sha1-80", 0, false); }

TEST(SrtpProtect, Sha1_32WithCsrcsAndHeaderExtension) { round_trip(4, "hmac-sha1-32", 2, true); }

// The direct send path's form: the shared plain packet is left untouched,
// the viewer's copy gets its own payload type and is authenticated with it.
TEST(SrtpProtect, OutOfPlaceWithPayloadTypeRewriteDecrypts) {
  const guint32 ssrc = 0x77;
  Decryptor dec(ssrc, "hmac-sha1-80");
  ASSERT_TRUE(dec.pipeline);
  SrtpProtector p;
  auto key = master_key();
  ASSERT_TRUE(p.init(key.data(), key.size(), 10));
  for (guint16 seq = 100; seq < 110; seq++) {
    const auto plain = rtp_packet(seq, ssrc, 300, 0, seq % 2 == 0);
    const auto before = plain;
    std::vector<guint8> wire(plain.size() + SrtpProtector::kMaxTrailer);
    const size_t n = p.protect(plain.data(), plain.size(), wire.data(), wire.size(), 111);
    ASSERT_EQ(n, plain.size() + 10);
    EXPECT_EQ(plain, before) << "the shared packet was modified";
    dec.push(wire.data(), n);
    auto expected = plain;
    expected[1] = guint8((expected[1] & 0x80) | 111);
    EXPECT_EQ(dec.pull(), expected) << "seq " << seq;
  }
}

TEST(SrtpProtect, WrongKeyIsRejectedBySrtpdec) {
  const guint32 ssrc = 0x5566;
  Decryptor dec(ssrc, "hmac-sha1-80");
  ASSERT_TRUE(dec.pipeline);
  auto key = master_key();
  key[0] ^= 1;
  SrtpProtector p;
  ASSERT_TRUE(p.init(key.data(), key.size(), 10));
  auto plain = rtp_packet(1, ssrc, 100, 0, false);
  plain.resize(plain.size() + SrtpProtector::kMaxTrailer);
  const size_t n = p.protect(plain.data(), 112, plain.size());
  dec.push(plain.data(), n);
  EXPECT_TRUE(dec.pull(300 * GST_MSECOND).empty());
}

TEST(SrtpProtect, RefusesBadKeysAndNonRtp) {
  SrtpProtector p;
  guint8 short_key[16] = {};
  EXPECT_FALSE(p.init(short_key, sizeof short_key, 10));
  auto key = master_key();
  EXPECT_FALSE(p.init(key.data(), key.size(), 8));
  ASSERT_TRUE(p.init(key.data(), key.size(), 10));
  guint8 junk[40] = {0x40};
  EXPECT_EQ(0u, p.protect(junk, 30, sizeof junk));    // version 1
  auto pkt = rtp_packet(1, 1, 20, 0, false);
  EXPECT_EQ(0u, p.protect(pkt.data(), pkt.size(), pkt.size()));  // no room for the tag
}

// SRTCP as a viewer's webrtcbin (srtpdec, libsrtp) reads it: compound
// SR + SDES packets, E flag and index, both tag lengths; the index moves on.
void rtcp_round_trip(size_t tag_len, const char *auth) {
  const guint32 ssrc = 0x0a0b0c0d;
  Decryptor dec(ssrc, auth, true);
  ASSERT_TRUE(dec.pipeline);
  SrtpProtector p;
  auto key = master_key();
  ASSERT_TRUE(p.init(key.data(), key.size(), 10, tag_len));
  for (guint32 i = 0; i < 5; i++) {
    const auto plain = rtcp_compound(ssrc, 100 + i);
    std::vector<guint8> wire(plain.size() + SrtpProtector::kMaxRtcpTrailer);
    const size_t n = p.protect_rtcp(plain.data(), plain.size(), wire.data(), wire.size());
    ASSERT_EQ(n, plain.size() + 4 + tag_len);
    EXPECT_EQ(0, memcmp(wire.data(), plain.data(), 8)) << "header and SSRC stay clear";
    EXPECT_NE(0, memcmp(wire.data() + 8, plain.data() + 8, plain.size() - 8)) << "not encrypted";
    const guint32 e_index = (guint32(wire[plain.size()]) << 24) |
                            (guint32(wire[plain.size() + 1]) << 16) |
                            (guint32(wire[plain.size() + 2]) << 8) | wire[plain.size() + 3];
    EXPECT_EQ(e_index, 0x80000000u | (SrtpProtector::kFirstRtcpIndex + i));
    dec.push(wire.data(), n);
    EXPECT_EQ(dec.pull(), plain) << "SRTCP packet " << i << " did not decrypt";
  }
  // Not RTCP (an RTP packet): refused.
  auto rtp = rtp_packet(1, ssrc, 50, 0, false);
  std::vector<guint8> out(rtp.size() + SrtpProtector::kMaxRtcpTrailer);
  EXPECT_EQ(0u, p.protect_rtcp(rtp.data(), rtp.size(), out.data(), out.size()));
}

TEST(SrtpProtect, SrtcpSha1_80DecryptsWithSrtpdec) { rtcp_round_trip(10, "hmac-sha1-80"); }

TEST(SrtpProtect, SrtcpSha1_32DecryptsWithSrtpdec) { rtcp_round_trip(4, "hmac-sha1-32"); }

TEST(SrtpProtect, SrtcpWithAWrongKeyIsRejected) {
  const guint32 ssrc = 0x99;
  Decryptor dec(ssrc, "hmac-sha1-80", true);
  ASSERT_TRUE(dec.pipeline);
  auto key = master_key();
  key[29] ^= 1;  // the salt
  SrtpProtector p;
  ASSERT_TRUE(p.init(key.data(), key.size(), 10));
  const auto plain = rtcp_compound(ssrc, 1);
  std::vector<guint8> wire(plain.size() + SrtpProtector::kMaxRtcpTrailer);
  const size_t n = p.protect_rtcp(plain.data(), plain.size(), wire.data(), wire.size());
  ASSERT_GT(n, 0u);
  dec.push(wire.data(), n);
  EXPECT_TRUE(dec.pull(300 * GST_MSECOND).empty());
}

// The receiving half (a released viewer's reports, direct-rtcp.h): what
// libsrtp (srtpenc, as in a browser) protects, unprotect_rtcp() reads back;
// a replay, a changed byte and another key are refused.
void srtcp_from_srtpenc(size_t tag_len, int auth_enum) {
  gobj::Ref<GstElement> pipeline = gobj::sink(gst_parse_launch(
      "appsrc name=src format=time is-live=true caps=application/x-rtcp ! e.rtcp_sink_0 "
      "srtpenc name=e e.rtcp_src_0 ! appsink name=sink sync=false",
      nullptr));
  ASSERT_TRUE(pipeline) << "srtpenc (gst-plugins-bad) is missing";
  gobj::Ref<GstElement> src = gobj::adopt(gst_bin_get_by_name(GST_BIN(pipeline.get()), "src"));
  gobj::Ref<GstElement> enc = gobj::adopt(gst_bin_get_by_name(GST_BIN(pipeline.get()), "e"));
  gobj::Ref<GstElement> sink = gobj::adopt(gst_bin_get_by_name(GST_BIN(pipeline.get()), "sink"));
  auto key = master_key();
  gobj::Ref<GstBuffer> kb = gobj::adopt(gst_buffer_new_memdup(key.data(), key.size()));
  g_object_set(enc.get(), "key", kb.get(), "rtp-cipher", 1, "rtp-auth", auth_enum, "rtcp-cipher", 1,
               "rtcp-auth", auth_enum, nullptr);
  ASSERT_NE(gst_element_set_state(pipeline.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  SrtpProtector reader, stranger;
  ASSERT_TRUE(reader.init(key.data(), key.size(), 10, tag_len));
  auto other = key;
  other[3] ^= 0x40;
  ASSERT_TRUE(stranger.init(other.data(), other.size(), 10, tag_len));
  for (guint32 i = 0; i < 5; i++) {
    const auto plain = rtcp_compound(0x5566, 10 + i);
    gst_app_src_push_buffer(GST_APP_SRC(src.get()), gst_buffer_new_memdup(plain.data(), plain.size()));
    gobj::Ref<GstSample> s =
        gobj::adopt(gst_app_sink_try_pull_sample(GST_APP_SINK(sink.get()), 2 * GST_SECOND));
    ASSERT_TRUE(s) << "srtpenc gave nothing for packet " << i;
    GstBuffer *b = gst_sample_get_buffer(s.get());
    std::vector<guint8> wire(gst_buffer_get_size(b));
    gst_buffer_extract(b, 0, wire.data(), wire.size());
    ASSERT_EQ(wire.size(), plain.size() + 4 + tag_len);
    std::vector<guint8> out(wire.size());
    EXPECT_EQ(0u, stranger.unprotect_rtcp(wire.data(), wire.size(), out.data())) << "another key";
    auto tampered = wire;
    tampered[12] ^= 1;
    EXPECT_EQ(0u, reader.unprotect_rtcp(tampered.data(), tampered.size(), out.data()));
    ASSERT_EQ(plain.size(), reader.unprotect_rtcp(wire.data(), wire.size(), out.data()))
        << "packet " << i << " was refused";
    out.resize(plain.size());
    EXPECT_EQ(out, plain) << "packet " << i << " did not decrypt";
    EXPECT_EQ(0u, reader.unprotect_rtcp(wire.data(), wire.size(), out.data())) << "a replay";
  }
  gst_element_set_state(pipeline.get(), GST_STATE_NULL);
}

TEST(SrtpProtect, SrtcpFromSrtpencSha1_80IsReadBack) { srtcp_from_srtpenc(10, 2); }

TEST(SrtpProtect, SrtcpFromSrtpencSha1_32IsReadBack) { srtcp_from_srtpenc(4, 1); }

TEST(SrtpProtect, SrtcpReplayWindowTakesLateButNotStalePackets) {
  auto key = master_key();
  SrtpProtector writer, reader;
  ASSERT_TRUE(writer.init(key.data(), key.size(), 10));
  ASSERT_TRUE(reader.init(key.data(), key.size(), 10));
  std::vector<std::vector<guint8>> wire;
  for (guint32 i = 0; i < 80; i++) {
    const auto plain = rtcp_compound(7, i);
    std::vector<guint8> w(plain.size() + SrtpProtector::kMaxRtcpTrailer);
    w.resize(writer.protect_rtcp(plain.data(), plain.size(), w.data(), w.size()));
    ASSERT_FALSE(w.empty());
    wire.push_back(w);
  }
  std::vector<guint8> out(200);
  ASSERT_GT(reader.unprotect_rtcp(wire[70].data(), wire[70].size(), out.data()), 0u);
  EXPECT_GT(reader.unprotect_rtcp(wire[10].data(), wire[10].size(), out.data()), 0u) << "60 late";
  EXPECT_EQ(reader.unprotect_rtcp(wire[10].data(), wire[10].size(), out.data()), 0u) << "replay";
  EXPECT_EQ(reader.unprotect_rtcp(wire[5].data(), wire[5].size(), out.data()), 0u) << "65 late";
  EXPECT_GT(reader.unprotect_rtcp(wire[79].data(), wire[79].size(), out.data()), 0u);
}
