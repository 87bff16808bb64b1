// whepserversink with release-webrtcbin (the default): once a viewer on the
// direct path has sent its first SRTCP its webrtcbin is stopped and
// released, and its RTCP runs on the shared ICE agent's thread
// (gst/whep/direct-rtcp.h). What the viewer must not notice, and what the
// server must still do: media and SRs keep coming, RTT, NACK, PLI, trickle
// PATCH, removal, and no thread left per viewer.
#include "whepserversink_fixtures.h"

#include "retransmit-guard.h"

namespace {

bool released(GstElement *sink, const Viewer &v) {
  gboolean r = FALSE;
  if (auto st = viewer_stats(sink, v.session)) gst_structure_get_boolean(st.get(), "webrtcbin-released", &r);
  return r;
}

bool all_released(Source &src, const std::vector<std::unique_ptr<Viewer>> &viewers) {
  for (auto &v : viewers)
    if (!released(src.sink.get(), *v)) return false;
  return src.webrtcbins() == 0;
}

}  // namespace

TEST(WhepServerSinkRelease, ViewersKeepDecodingWithRtcpOnTheAgentThread) {
  Source src;
  auto viewers = decoding_viewers(src, 2);
  ASSERT_EQ(viewers.size(), 2u);
  ASSERT_TRUE(test::wait_for([&] { return all_released(src, viewers); }, 10000))
      << src.webrtcbins() << " webrtcbins left";
  EXPECT_EQ(src.viewer_count(), 2u);

  // Video, audio and SRs keep coming (the SRs now built by the relay).
  const guint64 v0 = viewers[0]->video.n(), a0 = viewers[0]->audio.n();
  const guint64 v1 = viewers[1]->video.n(), a1 = viewers[1]->audio.n();
  EXPECT_TRUE(test::wait_for([&] {
    return viewers[0]->video.n() >= v0 + 60 && viewers[0]->audio.n() >= a0 + 50 &&
           viewers[1]->video.n() >= v1 + 60 && viewers[1]->audio.n() >= a1 + 50;
  }, 20000)) << "the viewers stopped decoding once released";
  EXPECT_TRUE(srs_taken(src.sink.get(), viewers));

  // The viewers' reports are read: they keep the session alive, and they
  // echo our SRs, which gives the round-trip time.
  auto stat = [&](const Viewer &v, const char *field) {
    double rtt = -1;
    guint64 n = 0;
    auto st = viewer_stats(src.sink.get(), v.session);
    if (st && g_str_equal(field, "rtt")) gst_structure_get_double(st.get(), "rtt", &rtt);
    if (st && !g_str_equal(field, "rtt")) {
      gst_structure_get_uint64(st.get(), field, &n);
      return double(n);
    }
    return rtt;
  };
  std::vector<double> reports;
  for (auto &v : viewers) reports.push_back(stat(*v, "rtcp-received"));
  EXPECT_TRUE(test::wait_for([&] {
    for (size_t i = 0; i < viewers.size(); i++)
      if (stat(*viewers[i], "rtcp-received") <= reports[i]) return false;
    return true;
  }, 10000)) << "a released viewer's reports are not read";
  for (auto &v : viewers) EXPECT_EQ(stat(*v, "rtcp-rejected"), 0) << "SRTCP refused";
  // RTT comes from a report block that echoes one of our SRs. The test
  // viewers NACK a few packets a second here (rtpjitterbuffer's
  // rtx-next-seqnum default: packets merely late, see the fixture), and
  // rtpsession sends those as early RTCP (RFC 4585) whose RR carries no
  // report block, and may suppress the regular report: its arrival is not
  // asserted; when it is there it must be a loopback round trip.
  auto rtt = [&] {
    double best = -1;
    for (auto &v : viewers) best = std::max(best, stat(*v, "rtt"));
    return best;
  };
  if (!test::wait_for([&] { return rtt() >= 0; }, 10000))
    std::printf("no report block echoed an SR within 10 s: rtt unknown\n");
  EXPECT_LT(rtt(), 1.0) << "a loopback round trip";

  // Trickle ICE after the release goes to the viewer's stream on the
  // shared agent; the session is unharmed.
  const std::string frag = "a=candidate:9 1 udp 2122260223 127.0.0.1 9 typ host\r\n";
  EXPECT_EQ(request(src.sink.get(), "PATCH", viewers[0]->session, frag,
                    "application/trickle-ice-sdpfrag").status, 204u);
  const guint64 v2 = viewers[0]->video.n();
  EXPECT_TRUE(test::wait_for([&] { return viewers[0]->video.n() >= v2 + 30; }, 10000));

  // Removal releases the ICE streams, and with them the shared agent.
  for (auto &v : viewers) EXPECT_EQ(request(src.sink.get(), "DELETE", v->session, "").status, 200u);
  EXPECT_EQ(src.viewer_count(), 0u);
  EXPECT_TRUE(test::wait_for([&] { return threads_named("ice-agent") == 0; }, 10000))
      << threads_named("ice-agent") << " shared ICE agent threads outlived their viewers";
}

// What release-webrtcbin is for: no thread stays per viewer. Measured as
// ThreadsPerViewerAreMeasured does (the test's own viewers are in this
// process too, so it is the server's count with and without them).
TEST(WhepServerSinkRelease, ReleasedViewersLeaveNoThreadPerViewer) {
  Source src(30, false, 15);
  auto viewers = decoding_viewers(src, 12, false);
  ASSERT_EQ(viewers.size(), 12u);
  ASSERT_TRUE(test::wait_for([&] { return all_released(src, viewers); }, 15000));
  // Threads a stopped webrtcbin had leave GStreamer's pool after a moment.
  const guint with = steady_thread_count(1000 * 1000, 15000);
  for (auto &v : viewers) request(src.sink.get(), "DELETE", v->session, "");
  ASSERT_TRUE(test::wait_for([&] { return src.viewer_count() == 0; }, 10000));
  const guint without = steady_thread_count(1000 * 1000, 15000);
  const double per_viewer = (double(with) - double(without)) / double(viewers.size());
  std::printf("server threads per released viewer: %.2f (%u with 12 viewers, %u without)\n",
              per_viewer, with, without);
  RecordProperty("threads_per_viewer_x100", int(per_viewer * 100));
  EXPECT_LT(per_viewer, 0.5);
}

// A viewer that leaves says BYE (RTCP, RFC 3550 6.6); the relay then
// removes it at once instead of waiting for viewer-timeout. The test
// viewer's webrtcbin does not send one when it stops, so it is made to:
// an RR + BYE compound into its srtpenc, which protects and sends it.
TEST(WhepServerSinkRelease, ViewerThatSaysByeIsRemovedWithoutWaitingForTheTimeout) {
  Source src(30, true, 30, "viewer-timeout=60");
  auto viewers = decoding_viewers(src, 1);
  ASSERT_EQ(viewers.size(), 1u);
  ASSERT_TRUE(test::wait_for([&] { return all_released(src, viewers); }, 10000));
  gobj::Ref<GstElement> srtpenc = find_by_factory(viewers[0]->webrtc.get(), "srtpenc");
  ASSERT_TRUE(srtpenc);
  gobj::Ref<GstPad> rtcp_in = gobj::adopt(gst_element_get_static_pad(srtpenc.get(), "rtcp_sink_0"));
  ASSERT_TRUE(rtcp_in) << "no RTCP input on the viewer's srtpenc";
  const guint8 bye[] = {0x80, 201, 0x00, 0x01, 0x12, 0x34, 0x56, 0x78,   // RR, no blocks
                        0x81, 203, 0x00, 0x01, 0x12, 0x34, 0x56, 0x78};  // BYE
  const gint64 said = g_get_monotonic_time();
  EXPECT_EQ(gst_pad_chain(rtcp_in.get(), gst_buffer_new_memdup(bye, sizeof bye)), GST_FLOW_OK);
  EXPECT_TRUE(test::wait_for([&] { return src.viewer_count() == 0; }, 5000))
      << "the BYE was not taken: still waiting for the 60 s timeout";
  std::printf("viewer removed %" G_GINT64_FORMAT " ms after its BYE\n",
              (g_get_monotonic_time() - said) / 1000);
}

// A viewer that NACKs the same packets again and again (every 20 ms, ~400
// packets each time: one SRTCP packet can name thousands) is resent no more
// than its budget (gst/whep/retransmit-guard.h): half the packets sent to
// it plus a burst; the rest is refused and counted, and media keeps flowing.
TEST(WhepServerSinkRelease, ANackFloodIsAnsweredWithinTheViewersBudget) {
  Source src;
  auto viewers = decoding_viewers(src, 1);
  ASSERT_EQ(viewers.size(), 1u);
  ASSERT_TRUE(test::wait_for([&] { return all_released(src, viewers); }, 10000));
  // The SSRC and latest sequence number of one received stream, read
  // where RTP enters the viewer's jitterbuffer.
  gobj::Ref<GstElement> jitterbuffer = find_by_factory(viewers[0]->webrtc.get(), "rtpjitterbuffer");
  ASSERT_TRUE(jitterbuffer);
  static std::atomic<guint32> ssrc{0};
  static std::atomic<guint> last_seq{0};
  ssrc = 0;
  gobj::Ref<GstPad> jb_in = gobj::adopt(gst_element_get_static_pad(jitterbuffer.get(), "sink"));
  gulong probe = gst_pad_add_probe(
      jb_in.get(), GST_PAD_PROBE_TYPE_BUFFER,
      +[](GstPad *, GstPadProbeInfo *info, gpointer) -> GstPadProbeReturn {
        guint8 h[12];
        if (gst_buffer_extract(GST_PAD_PROBE_INFO_BUFFER(info), 0, h, 12) == 12) {
          last_seq = (guint(h[2]) << 8) | h[3];
          ssrc = (guint32(h[8]) << 24) | (guint32(h[9]) << 16) | (guint32(h[10]) << 8) | h[11];
        }
        return GST_PAD_PROBE_OK;
      },
      nullptr, nullptr);
  ASSERT_TRUE(test::wait_for([&] { return ssrc != 0; }, 5000));
  gobj::Ref<GstElement> srtpenc = find_by_factory(viewers[0]->webrtc.get(), "srtpenc");
  ASSERT_TRUE(srtpenc);
  gobj::Ref<GstPad> rtcp_in = gobj::adopt(gst_element_get_static_pad(srtpenc.get(), "rtcp_sink_0"));
  ASSERT_TRUE(rtcp_in);
  // RR without blocks, then a generic NACK (RTPFB, FMT 1) with 24 FCI
  // entries, each a PID and a full BLP: 17 packets each.
  constexpr guint kPairs = 24;
  auto nack_all_recent = [&] {
    std::vector<guint8> p = {0x80, 201, 0x00, 0x01, 0x12, 0x34, 0x56, 0x78};
    const guint words = 2 + kPairs;  // sender SSRC, media SSRC, FCI
    const guint8 fb[] = {0x81, 205, guint8(words >> 8), guint8(words), 0x12, 0x34, 0x56, 0x78};
    p.insert(p.end(), fb, fb + sizeof fb);
    const guint32 media = ssrc;
    for (int i = 0; i < 4; i++) p.push_back(guint8(media >> (24 - 8 * i)));
    const guint16 first = guint16(last_seq.load() - 17 * kPairs - 12);
    for (guint i = 0; i < kPairs; i++) {
      const guint16 pid = guint16(first + 17 * i);
      const guint8 fci[] = {guint8(pid >> 8), guint8(pid), 0xff, 0xff};
      p.insert(p.end(), fci, fci + 4);
    }
    return gst_pad_chain(rtcp_in.get(), gst_buffer_new_memdup(p.data(), p.size()));
  };
  auto stat = [&](const char *field) {
    guint64 n = 0;
    if (auto st = viewer_stats(src.sink.get(), viewers[0]->session)) gst_structure_get_uint64(st.get(), field, &n);
    return n;
  };
  guint sent_nacks = 0;
  for (int i = 0; i < 150; i++) {
    if (nack_all_recent() == GST_FLOW_OK) sent_nacks++;
    g_usleep(20 * 1000);  // the flood's own pace, not a wait for a condition
  }
  gst_pad_remove_probe(jb_in.get(), probe);
  EXPECT_GT(sent_nacks, 100u);
  // The last NACKs are handled on the agent's thread after the loop.
  const guint64 v0 = viewers[0]->video.n();
  EXPECT_TRUE(test::wait_for([&] { return viewers[0]->video.n() >= v0 + 15; }, 10000))
      << "the viewer stopped decoding during the flood";
  const guint64 resent = stat("packets-resent"), refused = stat("retransmissions-refused"),
                sent = stat("packets-sent");
  std::printf("NACK flood: %u NACK packets (%u packets asked each), %" G_GUINT64_FORMAT
              " resent, %" G_GUINT64_FORMAT " refused, %" G_GUINT64_FORMAT " sent\n",
              sent_nacks, 17 * kPairs, resent, refused, sent);
  EXPECT_LE(double(resent), double(sent) / 2 + RetransmitGuard::kBurst);
  EXPECT_GT(refused, resent) << "the flood asked for far more than the budget";
}

// Released viewers stay as long as their reports come: with an 8 s
// viewer-timeout (the test viewers' rtpsession reports every 2.5-7.5 s,
// RFC 3550's randomised 5 s), 12 s after the release all are still served.
TEST(WhepServerSinkRelease, ReleasedViewersOutliveTheRtcpTimeout) {
  Source src(30, false, 30, "viewer-timeout=8");
  auto viewers = decoding_viewers(src, 4, false);
  ASSERT_EQ(viewers.size(), 4u);
  ASSERT_TRUE(test::wait_for([&] { return all_released(src, viewers); }, 10000));
  std::vector<guint64> before;
  for (auto &v : viewers) before.push_back(v->video.n());
  EXPECT_TRUE(test::wait_for([&] {
    for (size_t i = 0; i < viewers.size(); i++)
      if (viewers[i]->video.n() < before[i] + 360) return false;
    return true;
  }, 25000)) << "a released viewer stopped decoding";
  EXPECT_EQ(src.viewer_count(), 4u) << "a released viewer was timed out";
}
