// whepserversink: live VP8 + Opus in, test-driven recvonly webrtcbin viewers
// out, all on 127.0.0.1. Viewers decode (vp8dec/opusdec) and count frames on
// a probe.
#include "whepserversink_fixtures.h"


TEST(WhepServerSink, FactoryIsOurs) { EXPECT_TRUE(test::factory_is_ours("whepserversink")); }

TEST(WhepServerSink, ServesTenViewersWithVideoAndAudio) {
  Source src;
  ASSERT_TRUE(src.play_and_wait_caps());
  auto viewers = join_viewers(src.sink.get(), 10);
  ASSERT_EQ(viewers.size(), 10u);
  EXPECT_EQ(src.viewer_count(), 10u);
  EXPECT_TRUE(all_decode(viewers, 30, 50, 30000));
  for (size_t i = 0; i < viewers.size(); i++) {
    EXPECT_GE(viewers[i]->video.n(), 30u) << "viewer " << i;
    EXPECT_GE(viewers[i]->audio.n(), 50u) << "viewer " << i;
  }
}


TEST(WhepServerSink, ViewerWithOwnPayloadTypesDecodes) {
  Source src;
  ASSERT_TRUE(src.play_and_wait_caps());
  std::vector<std::unique_ptr<Viewer>> viewers;
  viewers.push_back(std::make_unique<Viewer>());
  Viewer::Options o;
  o.video_pt = 120;
  o.audio_pt = 109;
  viewers.push_back(std::make_unique<Viewer>(o));
  std::string offer = viewers[1]->offer();
  EXPECT_NE(offer.find("m=video 9 UDP/TLS/RTP/SAVPF 120"), std::string::npos) << offer;
  EXPECT_NE(offer.find("a=rtpmap:109 OPUS/48000/2"), std::string::npos) << offer;
  ASSERT_FALSE(viewers[0]->join(src.sink.get()).empty());
  HttpResponse r = request(src.sink.get(), "POST", "", offer);
  ASSERT_EQ(r.status, 201u) << r.body;
  EXPECT_NE(r.body.find("a=rtpmap:120 VP8/90000"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("a=rtpmap:109 OPUS/48000/2"), std::string::npos) << r.body;
  ASSERT_TRUE(viewers[1]->answer(r.body));
  EXPECT_TRUE(all_decode(viewers, 30, 50, 20000));
  for (auto &v : viewers) {
    EXPECT_GE(v->video.n(), 30u);
    EXPECT_GE(v->audio.n(), 50u);
  }
}

TEST(WhepServerSink, LateJoinerDecodesWithinBudgetDespiteLongGop) {
  Source src(300);  // a keyframe every 10 s at 30 fps
  ASSERT_TRUE(src.play_and_wait_caps());
  Viewer first;
  ASSERT_FALSE(first.join(src.sink.get()).empty());
  ASSERT_TRUE(test::wait_for([&] { return first.video.n() >= 60; }, 15000));
  // Mid-GOP: the last keyframe was the one asked for by the first viewer.
  Viewer late;
  ASSERT_FALSE(late.join(src.sink.get()).empty());
  ASSERT_TRUE(test::wait_for([&] { return late.video.n() >= 1; }, 5000));
  const gint64 ms = (late.video.first_time() - late.answered_at) / 1000;
  std::printf("late joiner: first decoded frame %" G_GINT64_FORMAT " ms after its 201\n", ms);
  RecordProperty("first_frame_ms", int(ms));
  EXPECT_LT(ms, 1500);  // the 500 ms goal with CI headroom; 10 s without keyframe-on-join
}

TEST(WhepServerSink, ChurnDoesNotStallSteadyViewer) {
  Source src;
  ASSERT_TRUE(src.play_and_wait_caps());
  Viewer steady;
  ASSERT_FALSE(steady.join(src.sink.get()).empty());
  ASSERT_TRUE(test::wait_for([&] { return steady.video.n() >= 30; }, 15000));
  steady.video.measure_gaps();
  for (int round = 0; round < 4; round++) {
    std::vector<std::unique_ptr<Viewer>> churn;
    for (int i = 0; i < 2; i++) {
      churn.push_back(std::make_unique<Viewer>());
      ASSERT_FALSE(churn.back()->join(src.sink.get()).empty());
    }
    ASSERT_TRUE(all_decode(churn, 5, 0, 15000));
    for (auto &v : churn) EXPECT_EQ(request(src.sink.get(), "DELETE", v->session, "").status, 200u);
    // The steady viewer's webrtcbin was released once it sent RTCP.
    ASSERT_TRUE(test::wait_for([&] { return src.webrtcbins() == 0; }, 10000));
  }
  EXPECT_EQ(src.viewer_count(), 1u);
  const gint64 gap_ms = steady.video.largest_gap() / 1000;
  std::printf("steady viewer: largest gap between decoded frames during churn %" G_GINT64_FORMAT
              " ms\n", gap_ms);
  RecordProperty("largest_gap_ms", int(gap_ms));
  EXPECT_LT(gap_ms, 400);  // 33 ms nominal; 400 leaves room for a loaded 2-core CI box
}

// Stats are read from another thread while viewers join and leave: every
// answer is a complete structure or NULL (removed), and no GLib critical
// (the harness fails the test on one) such as a hash table modified while
// iterated.
TEST(WhepServerSink, StatsQueriedDuringChurnAreConsistent) {
  Source src;
  ASSERT_TRUE(src.play_and_wait_caps());
  std::mutex m;
  std::vector<std::string> sessions;
  std::atomic<bool> stop{false};
  std::atomic<guint> answered{0}, incomplete{0};
  std::thread poller([&] {
    while (!stop) {
      std::vector<std::string> ids;
      {
        std::lock_guard<std::mutex> g(m);
        ids = sessions;
      }
      for (auto &id : ids) {
        auto st = viewer_stats(src.sink.get(), id);
        if (!st) continue;
        answered++;
        guint64 bytes = 0;
        gboolean connected = FALSE;
        if (!gst_structure_get_uint64(st.get(), "bytes-sent", &bytes) ||
            !gst_structure_get_boolean(st.get(), "connected", &connected))
          incomplete++;
      }
      g_usleep(2000);
    }
  });
  for (int round = 0; round < 3; round++) {
    std::vector<std::unique_ptr<Viewer>> vs;
    for (int i = 0; i < 3; i++) {
      vs.push_back(std::make_unique<Viewer>());
      const std::string id = vs.back()->join(src.sink.get());
      std::lock_guard<std::mutex> g(m);
      sessions.push_back(id);
    }
    EXPECT_TRUE(all_decode(vs, 5, 0, 15000));
    for (auto &v : vs) EXPECT_EQ(request(src.sink.get(), "DELETE", v->session, "").status, 200u);
  }
  EXPECT_TRUE(test::wait_for([&] { return src.webrtcbins() == 0; }, 10000));
  stop = true;
  poller.join();
  EXPECT_GT(answered.load(), 0u);
  EXPECT_EQ(incomplete.load(), 0u);
}

// Loss on the wire towards one viewer: every 20th RTP packet (5 %) is
// dropped as it arrives at the viewer's ICE socket, so only a
// retransmission can repair it. With direct-send the server answers NACKs
// from the input's shared history; without, webrtcbin's rtprtxsend sends RTX.
void lossy_viewer_recovers(bool direct_send) {
  Source src(30, true, 30, direct_send ? "direct-send=true" : "direct-send=false");
  ASSERT_TRUE(src.play_and_wait_caps());
  auto viewers = join_viewers(src.sink.get(), 2);
  ASSERT_EQ(viewers.size(), 2u);
  gobj::Ref<GstElement> nicesrc = find_by_factory(viewers[1]->webrtc.get(), "nicesrc");
  ASSERT_TRUE(nicesrc);
  gobj::Ref<GstPad> pad = gobj::adopt(gst_element_get_static_pad(nicesrc.get(), "src"));
  static std::atomic<guint> rtp_seen, dropped;
  rtp_seen = 0;
  dropped = 0;
  gst_pad_add_probe(
      pad.get(), GST_PAD_PROBE_TYPE_BUFFER,
      +[](GstPad *, GstPadProbeInfo *info, gpointer) -> GstPadProbeReturn {
        guint8 b[2];
        GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
        if (gst_buffer_extract(buf, 0, b, 2) != 2 || (b[0] & 0xc0) != 0x80) return GST_PAD_PROBE_OK;
        if ((b[1] & 0x7f) >= 64 && (b[1] & 0x7f) <= 95) return GST_PAD_PROBE_OK;  // RTCP
        if (++rtp_seen % 20 == 0) {
          dropped++;
          return GST_PAD_PROBE_DROP;
        }
        return GST_PAD_PROBE_OK;
      },
      nullptr, nullptr);
  viewers[0]->video.measure_gaps();
  viewers[1]->video.measure_gaps();
  EXPECT_TRUE(all_decode(viewers, 120, 100, 30000));
  EXPECT_GT(dropped.load(), 10u);
  auto stats = viewer_stats(src.sink.get(), viewers[1]->session);
  ASSERT_TRUE(stats);
  guint nacks = 0;
  guint64 bytes = 0, resent = 0;
  gboolean direct = FALSE;
  gst_structure_get_uint(stats.get(), "nacks-received", &nacks);
  gst_structure_get_uint64(stats.get(), "bytes-sent", &bytes);
  gst_structure_get_uint64(stats.get(), "packets-resent", &resent);
  gst_structure_get_boolean(stats.get(), "direct-send", &direct);
  std::printf("lossy viewer: %u packets dropped, stats %s\n", dropped.load(),
              gobj::Unique<gchar>(gst_structure_to_string(stats.get())).get());
  EXPECT_EQ(bool(direct), direct_send);
  EXPECT_GT(nacks, 0u);
  if (direct_send) {
    EXPECT_GT(resent, 0u);
    EXPECT_TRUE(srs_taken(src.sink.get(), viewers));
  }
  EXPECT_GT(bytes, 10000u);
  EXPECT_LT(viewers[0]->video.largest_gap() / 1000, 400);
  EXPECT_LT(viewers[1]->video.largest_gap() / 1000, 1000);
}

TEST(WhepServerSink, LossyViewerRecoversWithNackAndOthersUnaffected) { lossy_viewer_recovers(true); }

// A viewer's PLI still reaches the publisher when its media skips webrtcbin:
// rtpsession only answers PLI for a source it has seen sending, which the
// direct path's keepalive packets keep it seeing.
TEST(WhepServerSink, ViewerPliOnTheDirectPathRequestsAKeyframe) {
  Source src(1000);  // no keyframe of its own for 33 s
  ASSERT_TRUE(src.play_and_wait_caps());
  Viewer v;
  ASSERT_FALSE(v.join(src.sink.get()).empty());
  ASSERT_TRUE(test::wait_for([&] { return v.video.n() >= 20; }, 15000));
  guint64 before = 0;
  auto first = viewer_stats(src.sink.get(), v.session);
  ASSERT_TRUE(first);
  gst_structure_get_uint64(first.get(), "keyframe-requests", &before);
  gboolean direct = FALSE;
  gst_structure_get_boolean(first.get(), "direct-send", &direct);
  EXPECT_TRUE(direct);
  // The viewer asks for a keyframe: webrtcbin turns this into an RTCP PLI.
  GstIterator *it = gst_element_iterate_src_pads(v.webrtc.get());
  GValue item = G_VALUE_INIT;
  guint sent = 0;
  while (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
    auto *pad = GST_PAD(g_value_get_object(&item));
    gobj::Ref<GstWebRTCRTPTransceiver> trans;
    g_object_get(pad, "transceiver", trans.out(), nullptr);
    GstWebRTCKind kind = GST_WEBRTC_KIND_UNKNOWN;
    if (trans) g_object_get(trans.get(), "kind", &kind, nullptr);
    if (kind == GST_WEBRTC_KIND_VIDEO &&
        gst_pad_send_event(pad, gst_video_event_new_upstream_force_key_unit(GST_CLOCK_TIME_NONE,
                                                                            TRUE, 1)))
      sent++;
    g_value_reset(&item);
  }
  g_value_unset(&item);
  gst_iterator_free(it);
  ASSERT_EQ(sent, 1u);
  guint plis = 0;
  guint64 requests = 0;
  EXPECT_TRUE(test::wait_for(
      [&] {
        auto st = viewer_stats(src.sink.get(), v.session);
        if (!st) return false;
        gst_structure_get_uint(st.get(), "plis-received", &plis);
        gst_structure_get_uint64(st.get(), "keyframe-requests", &requests);
        return plis > 0 && requests > before;
      },
      5000))
      << "plis " << plis << " keyframe requests " << requests << " (before " << before << ")";
}

TEST(WhepServerSink, LossyViewerRecoversWithRtxThroughWebrtcbin) { lossy_viewer_recovers(false); }


// Relayed (TURN) and TCP ICE pairs make the direct path send through
// libnice instead of sendmmsg on the pair's socket. No TURN server here:
// WHIPWHEP_DIRECT_SEND_VIA_AGENT forces that path on loopback pairs.
TEST(WhepServerSink, DirectSendThroughLibniceDecodes) {
  g_setenv("WHIPWHEP_DIRECT_SEND_VIA_AGENT", "1", TRUE);
  struct Unset {
    ~Unset() { g_unsetenv("WHIPWHEP_DIRECT_SEND_VIA_AGENT"); }
  } unset;
  Source src;
  ASSERT_TRUE(src.play_and_wait_caps());
  auto viewers = join_viewers(src.sink.get(), 2);
  ASSERT_EQ(viewers.size(), 2u);
  EXPECT_TRUE(all_decode(viewers, 30, 50, 30000));
  for (auto &v : viewers) {
    auto st = viewer_stats(src.sink.get(), v->session);
    ASSERT_TRUE(st);
    gboolean direct = FALSE;
    gst_structure_get_boolean(st.get(), "direct-send", &direct);
    EXPECT_TRUE(direct);
  }
  EXPECT_TRUE(srs_taken(src.sink.get(), viewers));
}

// The direct path sends a frame as one UDP GSO train; where the kernel
// refuses GSO on a viewer's route (EIO under an IPsec policy, EINVAL on a
// socket without TX checksums) it must fall back to one datagram per packet
// for that viewer, without a gap the viewer notices. SO_NO_CHECK on the
// relay's sockets makes loopback refuse GSO (udp_send_skb: EINVAL).
TEST(WhepServerSink, DirectSendFallsBackWhenTheKernelRefusesUdpGso) {
  // The viewers keep their webrtcbins: the test reaches a socket through one.
  Source src(30, true, 30, "release-webrtcbin=false");
  auto viewers = decoding_viewers(src, 2);
  ASSERT_EQ(viewers.size(), 2u);
  auto udp_gso = [&](const Viewer &v) {
    auto st = viewer_stats(src.sink.get(), v.session);
    gboolean direct = FALSE, gso = FALSE;
    if (st) {
      gst_structure_get_boolean(st.get(), "direct-send", &direct);
      gst_structure_get_boolean(st.get(), "udp-gso", &gso);
    }
    return std::make_pair(bool(direct), bool(gso));
  };
  for (auto &v : viewers) EXPECT_EQ(udp_gso(*v), std::make_pair(true, true));

  // One viewer's relay socket (the first webrtcbin found), through its ICE agent.
  guint sockets = 0;
  for_each_by_factory(src.sink.get(), "webrtcbin", [&](GstElement *webrtcbin) {
    gobj::Ref<GObject> ice, agent;
    g_object_get(webrtcbin, "ice-agent", ice.out(), nullptr);
    if (ice) g_object_get(ice.get(), "agent", agent.out(), nullptr);
    const guint stream = ice_stream_id_of(webrtcbin);
    if (!agent || !stream) return true;
    gobj::Ref<GSocket> sock = gobj::adopt(
        nice_agent_get_selected_socket(reinterpret_cast<NiceAgent *>(agent.get()), stream, 1));
    const int one = 1;
    if (sock &&
        setsockopt(g_socket_get_fd(sock.get()), SOL_SOCKET, SO_NO_CHECK, &one, sizeof one) == 0)
      sockets++;
    return sockets == 0;
  });
  ASSERT_EQ(sockets, 1u) << "no selected ICE socket found";

  const guint64 v0 = viewers[0]->video.n(), v1 = viewers[1]->video.n();
  auto without_gso = [&] {
    guint n = 0;
    for (auto &v : viewers) n += udp_gso(*v).second ? 0 : 1;
    return n;
  };
  EXPECT_TRUE(test::wait_for([&] { return without_gso() >= 1; }, 10000)) << "GSO never refused";
  EXPECT_EQ(without_gso(), 1u) << "only that viewer's socket refuses GSO";
  for (auto &v : viewers) EXPECT_TRUE(udp_gso(*v).first) << "still on the direct path";
  EXPECT_TRUE(test::wait_for(
      [&] { return viewers[0]->video.n() >= v0 + 60 && viewers[1]->video.n() >= v1 + 60; }, 20000))
      << viewers[0]->video.n() - v0 << " and " << viewers[1]->video.n() - v1 << " frames since";
}

// Once a viewer's SRTCP arrives its DTLS handshake is over, and the relay
// stops dtlsenc's send task (one thread fewer per viewer); media and RTCP
// do not pass through it, so the viewers keep decoding.
TEST(WhepServerSink, DtlsSendTaskStopsOnceTheViewerSendsRtcp) {
  // With release-webrtcbin (the default) the whole webrtcbin goes instead.
  Source src(30, true, 30, "release-webrtcbin=false");
  auto viewers = decoding_viewers(src, 2);
  ASSERT_EQ(viewers.size(), 2u);
  // Every dtlsenc of the relay's viewers (one per viewer: max-bundle).
  auto active_senders = [&] {
    guint found = 0, active = 0;
    for_each_by_factory(src.sink.get(), "dtlsenc", [&](GstElement *dtlsenc) {
      found++;
      gobj::Ref<GstPad> pad = gobj::adopt(gst_element_get_static_pad(dtlsenc, "src"));
      if (gst_pad_is_active(pad.get())) active++;
      return true;
    });
    return std::make_pair(found, active);
  };
  EXPECT_EQ(active_senders().first, 2u);
  // The viewers' first RTCP comes within a second or so (RTCP interval).
  EXPECT_TRUE(test::wait_for([&] { return active_senders().second == 0; }, 10000))
      << active_senders().second << " of " << active_senders().first << " still active";
  const guint64 v0 = viewers[0]->video.n(), v1 = viewers[1]->video.n();
  EXPECT_TRUE(test::wait_for(
      [&] { return viewers[0]->video.n() >= v0 + 30 && viewers[1]->video.n() >= v1 + 30; }, 15000))
      << "viewers stopped decoding after the DTLS send task stopped";
  // Teardown still works with the task stopped.
  for (auto &v : viewers) EXPECT_EQ(request(src.sink.get(), "DELETE", v->session, "").status, 200u);
  EXPECT_TRUE(test::wait_for([&] { return src.webrtcbins() == 0; }, 20000));
}

TEST(WhepServerSink, BadRequestsGetTheirStatusAndServiceContinues) {
  Source src(30, true, 30, "max-viewers=2");
  ASSERT_TRUE(src.play_and_wait_caps());
  Viewer a;
  ASSERT_FALSE(a.join(src.sink.get()).empty());
  ASSERT_TRUE(test::wait_for([&] { return a.video.n() >= 10; }, 15000));
  GstElement *sink = src.sink.get();

  EXPECT_EQ(request(sink, "POST", "", "v=0\r\nthis is not SDP\r\n").status, 400u);
  Viewer b;
  const std::string offer = b.offer();
  EXPECT_EQ(request(sink, "POST", "", offer, "text/plain").status, 415u);
  HttpResponse r = request(sink, "POST", "", replace_all(offer, "a=recvonly", "a=sendonly"));
  EXPECT_EQ(r.status, 422u);
  EXPECT_NE(r.body.find("recvonly"), std::string::npos) << r.body;
  EXPECT_EQ(request(sink, "POST", "", replace_all(offer, "a=recvonly", "a=sendrecv")).status, 422u);
  Viewer::Options h264;
  h264.video_codec = "H264";
  h264.video_pt = 102;
  Viewer c(h264);
  r = request(sink, "POST", "", c.offer());
  EXPECT_EQ(r.status, 422u);
  EXPECT_NE(r.body.find("VP8"), std::string::npos) << r.body;
  EXPECT_EQ(request(sink, "DELETE", "0123456789abcdef0123456789abcdef", "").status, 404u);
  EXPECT_EQ(src.viewer_count(), 1u);

  r = request(sink, "POST", "", offer);
  ASSERT_EQ(r.status, 201u) << r.body;
  ASSERT_TRUE(b.answer(r.body));
  Viewer d;
  r = request(sink, "POST", "", d.offer());
  EXPECT_EQ(r.status, 503u);
  ASSERT_NE(r.header("Retry-After"), nullptr);
  EXPECT_NE(r.body.find("max-viewers"), std::string::npos) << r.body;

  // Everyone admitted keeps playing.
  const guint64 before = a.video.n();
  EXPECT_TRUE(test::wait_for([&] { return a.video.n() >= before + 30 && b.video.n() >= 30; }, 15000));
}

TEST(WhepServerSink, ViewerBeforePublisherGetsRetryableStatus) {
  gobj::Ref<GstElement> pipeline = gobj::sink(gst_pipeline_new(nullptr));
  GstElement *sink = gst_element_factory_make("whepserversink", nullptr);
  ASSERT_TRUE(sink);
  g_object_set(sink, "ice-addresses", "127.0.0.1", nullptr);
  gst_bin_add(GST_BIN(pipeline.get()), sink);
  gobj::Ref<GstPad> pad = gobj::adopt(gst_element_request_pad_simple(sink, "video_%u"));
  ASSERT_TRUE(pad);
  gst_element_set_state(pipeline.get(), GST_STATE_PLAYING);
  Viewer v;
  HttpResponse r = request(sink, "POST", "", v.offer());
  EXPECT_EQ(r.status, 503u);
  ASSERT_NE(r.header("Retry-After"), nullptr);
  EXPECT_EQ(*r.header("Retry-After"), "2");
  EXPECT_NE(r.body.find("no publisher yet"), std::string::npos) << r.body;
  gst_element_set_state(pipeline.get(), GST_STATE_NULL);
  gst_element_release_request_pad(sink, pad.get());
}

TEST(WhepServerSink, CountsViewersSignalsAndDeleteReleasesEverything) {
  Source src;
  ASSERT_TRUE(src.play_and_wait_caps());
  struct Seen {
    std::mutex m;
    std::vector<std::string> added, removed;
  } seen;
  g_signal_connect(src.sink.get(), "viewer-added", G_CALLBACK(+[](GstElement *, const gchar *id, gpointer d) {
                     auto *s = static_cast<Seen *>(d);
                     std::lock_guard<std::mutex> g(s->m);
                     s->added.push_back(id);
                   }), &seen);
  g_signal_connect(src.sink.get(), "viewer-removed", G_CALLBACK(+[](GstElement *, const gchar *id, gpointer d) {
                     auto *s = static_cast<Seen *>(d);
                     std::lock_guard<std::mutex> g(s->m);
                     s->removed.push_back(id);
                   }), &seen);
  EXPECT_EQ(src.viewer_count(), 0u);
  Viewer v;
  const std::string id = v.join(src.sink.get());
  ASSERT_EQ(id.size(), 32u);
  EXPECT_EQ(src.viewer_count(), 1u);
  ASSERT_TRUE(test::wait_for([&] { return v.video.n() >= 10; }, 15000));
  {
    std::lock_guard<std::mutex> g(seen.m);
    ASSERT_EQ(seen.added.size(), 1u);
    EXPECT_EQ(seen.added[0], id);
  }
  auto stats = viewer_stats(src.sink.get(), id);
  ASSERT_TRUE(stats);
  gboolean connected = FALSE;
  gst_structure_get_boolean(stats.get(), "connected", &connected);
  EXPECT_TRUE(connected);
  // Its webrtcbin goes once the viewer's first SRTCP is in; the session stays.
  EXPECT_TRUE(test::wait_for([&] { return src.webrtcbins() == 0; }, 10000));
  EXPECT_EQ(src.viewer_count(), 1u);

  EXPECT_EQ(request(src.sink.get(), "DELETE", id, "").status, 200u);
  EXPECT_EQ(src.viewer_count(), 0u);
  EXPECT_TRUE(test::wait_for([&] {
    std::lock_guard<std::mutex> g(seen.m);
    return seen.removed.size() == 1;
  }, 10000));
  EXPECT_EQ(seen.removed[0], id);
  EXPECT_EQ(src.webrtcbins(), 0u);
  EXPECT_FALSE(viewer_stats(src.sink.get(), id));
  EXPECT_EQ(request(src.sink.get(), "DELETE", id, "").status, 404u);
  g_signal_handlers_disconnect_by_data(src.sink.get(), &seen);
}

// A viewer's webrtcbin posts hundreds of state-changed and stream-status
// messages as it starts and stops; with dozens of viewers joining at once
// they made every posting thread spin in the top-level bus's queue for
// seconds. whepserversink keeps them to itself; its own still go up.
TEST(WhepServerSink, ViewersInternalStateMessagesStayInside) {
  Source src;
  struct Count {
    std::atomic<int> inner{0}, own{0};
    GstObject *sink = nullptr;
  } count;
  count.sink = GST_OBJECT(src.sink.get());
  src.bus.reset();  // this test's handler takes the messages instead
  gobj::Ref<GstBus> bus = gobj::adopt(gst_element_get_bus(src.pipeline.get()));
  gst_bus_set_sync_handler(
      bus.get(),
      +[](GstBus *, GstMessage *msg, gpointer d) {
        auto *c = static_cast<Count *>(d);
        const GstMessageType t = GST_MESSAGE_TYPE(msg);
        if (t == GST_MESSAGE_STATE_CHANGED || t == GST_MESSAGE_STREAM_STATUS) {
          if (GST_MESSAGE_SRC(msg) == c->sink)
            c->own++;
          else if (gst_object_has_as_ancestor(GST_MESSAGE_SRC(msg), c->sink))
            c->inner++;
        }
        // GST_BUS_DROP hands the message to the handler (gst_bus_post does
        // not unref it then; see BusWatcher in tests/common/harness.cpp):
        // without this unref every message, and through its source every
        // element of the test pipeline, leaked (LeakSanitizer at exit).
        gst_message_unref(msg);
        return GST_BUS_DROP;
      },
      &count, nullptr);
  ASSERT_TRUE(src.play_and_wait_caps());
  EXPECT_GT(count.own.load(), 0) << "whepserversink's own state changes must still be posted";
  {
    Viewer v;
    const std::string id = v.join(src.sink.get());
    ASSERT_EQ(id.size(), 32u);
    ASSERT_TRUE(test::wait_for([&] { return v.video.n() >= 10; }, 15000));
    EXPECT_EQ(request(src.sink.get(), "DELETE", id, "").status, 200u);
  }
  EXPECT_EQ(src.webrtcbins(), 0u);
  EXPECT_EQ(count.inner.load(), 0);
  gst_element_set_state(src.pipeline.get(), GST_STATE_NULL);
  gst_bus_set_sync_handler(bus.get(), nullptr, nullptr, nullptr);
}

TEST(WhepServerSink, StandaloneListenerServesViewerOverHttp) {
  const guint port = test::free_tcp_port();
  Source src(30, true, 30, ("port=" + std::to_string(port)).c_str());
  ASSERT_TRUE(src.play_and_wait_caps());
  Viewer v;
  const std::string offer = v.offer();
  gobj::Ref<SoupSession> session = gobj::adopt(soup_session_new());
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/whep";
  gobj::Ref<SoupMessage> msg = gobj::adopt(soup_message_new("POST", url.c_str()));
  gobj::Ref<GBytes> body = gobj::adopt(g_bytes_new(offer.data(), offer.size()));
  soup_message_set_request_body_from_bytes(msg.get(), "application/sdp", body.get());
  gobj::Unique<GError> err;
  gobj::Ref<GBytes> answer =
      gobj::adopt(soup_session_send_and_read(session.get(), msg.get(), nullptr, gobj::out(err)));
  ASSERT_TRUE(answer) << (err ? err->message : "");
  ASSERT_EQ(soup_message_get_status(msg.get()), 201u);
  const char *location =
      soup_message_headers_get_one(soup_message_get_response_headers(msg.get()), "Location");
  ASSERT_TRUE(location);
  EXPECT_TRUE(g_str_has_prefix(location, "/whep/"));
  gsize n = 0;
  const char *data = static_cast<const char *>(g_bytes_get_data(answer.get(), &n));
  ASSERT_TRUE(v.answer(std::string(data, n)));
  EXPECT_TRUE(test::wait_for([&] { return v.video.n() >= 30 && v.audio.n() >= 50; }, 15000));

  gobj::Ref<SoupMessage> del = gobj::adopt(
      soup_message_new("DELETE", ("http://127.0.0.1:" + std::to_string(port) + location).c_str()));
  gobj::Ref<GBytes> ignored =
      gobj::adopt(soup_session_send_and_read(session.get(), del.get(), nullptr, nullptr));
  EXPECT_EQ(soup_message_get_status(del.get()), 200u);
  EXPECT_EQ(src.viewer_count(), 0u);
}

TEST(WhepServerSink, VanishedViewerIsRemovedWithoutDelete) {
  Source src(30, true, 30, "viewer-timeout=3");
  ASSERT_TRUE(src.play_and_wait_caps());
  auto v = std::make_unique<Viewer>();
  ASSERT_FALSE(v->join(src.sink.get()).empty());
  ASSERT_TRUE(test::wait_for([&] { return v->video.n() >= 10; }, 15000));
  const gint64 gone = g_get_monotonic_time();
  v.reset();  // no DELETE: the viewer just stops answering
  EXPECT_TRUE(test::wait_for([&] { return src.viewer_count() == 0 && src.webrtcbins() == 0; }, 30000));
  std::printf("vanished viewer removed after %" G_GINT64_FORMAT " ms\n",
              (g_get_monotonic_time() - gone) / 1000);
}

TEST(WhepServerSink, ThreadsPerViewerAreMeasured) {
  Source src(30, false, 15);
  auto viewers = decoding_viewers(src, 20, false);
  ASSERT_EQ(viewers.size(), 20u);
  const guint with = thread_count();
  for (auto &v : viewers) request(src.sink.get(), "DELETE", v->session, "");
  ASSERT_TRUE(test::wait_for([&] { return src.webrtcbins() == 0; }, 20000));
  // Let joined threads go: the count once it has not changed for 300 ms
  // (pooled task threads may linger; at most a few).
  const guint without = steady_thread_count(300 * 1000, 5000);
  const double per_viewer = (double(with) - double(without)) / 20.0;
  std::printf("server threads per viewer: %.2f (%u with 20 viewers, %u after removing them)\n",
              per_viewer, with, without);
  RecordProperty("threads_per_viewer_x100", int(per_viewer * 100));
  EXPECT_LT(per_viewer, 12.0);
}

// Handlers connected to one signal of an instance (GLib has no direct
// count: block and unblock them all).
guint handler_count(gpointer instance, const char *signal) {
  // (g_signal_handlers_block_matched() wants a closure, func or data to match.)
  const guint id = g_signal_lookup(signal, G_OBJECT_TYPE(instance));
  std::vector<gulong> found;
  while (gulong h = g_signal_handler_find(
             instance, GSignalMatchType(G_SIGNAL_MATCH_ID | G_SIGNAL_MATCH_UNBLOCKED), id, 0,
             nullptr, nullptr, nullptr)) {
    g_signal_handler_block(instance, h);
    found.push_back(h);
  }
  for (gulong h : found) g_signal_handler_unblock(instance, h);
  return guint(found.size());
}

// Viewers share libnice agents (ice-sessions-per-agent): two viewers on one
// agent, the third on another, each with its own ICE stream. A viewer that
// leaves takes its stream and its signal handlers off the shared agent, its
// place goes to the next viewer, and the agents' threads go with their last
// viewers.
TEST(WhepServerSink, ViewersShareIceAgentsAndLeaveNothingBehind) {
  // The test finds each viewer's agent through its webrtcbin: kept.
  Source src(30, false, 15, "ice-sessions-per-agent=2 release-webrtcbin=false");
  auto viewers = decoding_viewers(src, 3, false);
  ASSERT_EQ(viewers.size(), 3u);
  Viewer::Options o;
  o.audio = false;

  struct Ice {
    gobj::Ref<GObject> agent;
    guint stream = 0;
  };
  auto ice_of = [&](const std::string &session) {
    Ice found;
    for_each_by_factory(src.sink.get(), "webrtcbin", [&](GstElement *w) {
      auto *id = static_cast<const char *>(g_object_get_data(G_OBJECT(w), "whipwhep-viewer-session"));
      if (!id || session != id) return true;
      gobj::Ref<GObject> ice;
      g_object_get(w, "ice-agent", ice.out(), nullptr);
      if (ice) g_object_get(ice.get(), "agent", found.agent.out(), nullptr);
      found.stream = ice_stream_id_of(w);
      return false;
    });
    return found;
  };
  Ice a = ice_of(viewers[0]->session), b = ice_of(viewers[1]->session),
      c = ice_of(viewers[2]->session);
  ASSERT_TRUE(a.agent && b.agent && c.agent);
  EXPECT_EQ(a.agent, b.agent) << "the first two viewers share an agent";
  EXPECT_NE(a.agent, c.agent) << "the third is on the next one";
  EXPECT_NE(a.stream, b.stream);
  NiceAgent *shared = reinterpret_cast<NiceAgent *>(a.agent.get());
  guint pacing_ms = 0;
  g_object_get(shared, "stun-pacing-timer", &pacing_ms, nullptr);
  EXPECT_EQ(pacing_ms, 10u) << "libnice's 20 ms check pacing, shared by 2 sessions";
  const char *per_session[] = {"component-state-changed", "new-selected-pair-full"};
  guint before[2];
  for (int i = 0; i < 2; i++) {
    before[i] = handler_count(shared, per_session[i]);
    EXPECT_EQ(before[i] % 2, 0u) << per_session[i] << ": the two viewers connect alike";
    EXPECT_GT(before[i], 0u) << per_session[i];
  }

  request(src.sink.get(), "DELETE", viewers[1]->session, "");
  viewers.erase(viewers.begin() + 1);
  // Its webrtcbin is released off the request's thread, then its ICE object.
  // (libnice still reports credentials for a removed stream; not sockets.)
  auto stream_on_agent = [&](guint stream) {
    GPtrArray *sockets = nice_agent_get_sockets(shared, stream, 1);
    if (sockets) g_ptr_array_unref(sockets);
    return sockets != nullptr;
  };
  EXPECT_TRUE(test::wait_for([&] { return !stream_on_agent(b.stream); }, 10000))
      << "the leaving viewer's ICE stream is still on the shared agent";
  EXPECT_TRUE(stream_on_agent(a.stream));
  for (int i = 0; i < 2; i++)
    EXPECT_EQ(handler_count(shared, per_session[i]), before[i] / 2) << per_session[i];

  auto more = join_viewers(src.sink.get(), 1, o);
  ASSERT_EQ(more.size(), 1u);
  EXPECT_EQ(ice_of(more[0]->session).agent, a.agent) << "the freed place is taken";
  viewers.push_back(std::move(more[0]));
  const guint64 n0 = viewers[0]->video.n(), n1 = viewers[1]->video.n();
  EXPECT_TRUE(all_decode(viewers, 10, 0, 20000));
  EXPECT_TRUE(test::wait_for(
      [&] { return viewers[0]->video.n() > n0 + 10 && viewers[1]->video.n() > n1 + 10; }, 10000))
      << "the viewers that stayed keep decoding";
  for (int i = 0; i < 2; i++)
    EXPECT_EQ(handler_count(shared, per_session[i]), before[i]) << per_session[i];

  // The agents' threads go with their last viewers.
  auto agent_threads = [] { return threads_named("ice-agent"); };
  EXPECT_EQ(agent_threads(), 2u) << "two shared agents, one thread each";
  GWeakRef agent_a, agent_c;
  g_weak_ref_init(&agent_a, a.agent.get());
  g_weak_ref_init(&agent_c, c.agent.get());
  a = b = c = Ice();
  for (auto &v : viewers) request(src.sink.get(), "DELETE", v->session, "");
  ASSERT_TRUE(test::wait_for([&] { return src.webrtcbins() == 0; }, 10000));
  EXPECT_TRUE(test::wait_for([&] { return agent_threads() == 0; }, 10000))
      << agent_threads() << " shared ICE agent threads outlived their viewers";
  auto alive = [](GWeakRef *w) {
    GObject *o = static_cast<GObject *>(g_weak_ref_get(w));
    if (o) g_object_unref(o);
    return o != nullptr;
  };
  // And so do the agents themselves: nothing keeps one once its last
  // viewer's webrtcbin is gone (a viewer's nicesink holds it until then).
  EXPECT_TRUE(test::wait_for([&] { return !alive(&agent_a) && !alive(&agent_c); }, 5000))
      << "a shared NiceAgent outlived its viewers";
  g_weak_ref_clear(&agent_a);
  g_weak_ref_clear(&agent_c);
}

// whipsink -> whipserversrc ! whepserversink -> 3 viewers, all in-process
// over loopback: the relay as the server binary builds it.
TEST(WhepServerSink, RelaysWhipserversrcToThreeViewers) {
  if (!test::factory_is_ours("whipserversrc") || !test::factory_is_ours("whipsink"))
    FAIL() << "whipserversrc/whipsink not built";
  const guint port = test::free_tcp_port();
  gobj::Ref<GstElement> relay = gobj::sink(gst_pipeline_new("relay"));
  GstElement *in = gst_element_factory_make("whipserversrc", nullptr);
  GstElement *out = gst_element_factory_make("whepserversink", nullptr);
  ASSERT_TRUE(in && out);
  g_object_set(in, "ice-addresses", "127.0.0.1", "port", port, nullptr);
  g_object_set(out, "ice-addresses", "127.0.0.1", nullptr);
  gst_bin_add_many(GST_BIN(relay.get()), in, out, nullptr);
  g_signal_connect(in, "pad-added", G_CALLBACK(+[](GstElement *, GstPad *pad, gpointer sink) {
                     gobj::Ref<GstPad> target = gobj::adopt(
                         gst_element_request_pad_simple(GST_ELEMENT(sink), GST_PAD_NAME(pad)));
                     if (target) gst_pad_link(pad, target.get());
                   }), out);
  test::BusWatcher relay_bus(relay.get());
  ASSERT_NE(gst_element_set_state(relay.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);

  const std::string desc =
      "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 "
      "! whipsink name=ws ice-addresses=127.0.0.1 timeout=10 video-codec=vp8 "
      "whip-endpoint=http://127.0.0.1:" + std::to_string(port) +
      "/whip audiotestsrc is-live=true ! ws.";
  gobj::Unique<GError> err;
  gobj::Ref<GstElement> pub = gobj::sink(gst_parse_launch(desc.c_str(), gobj::out(err)));
  ASSERT_TRUE(pub) << (err ? err->message : "");
  ASSERT_NE(gst_element_set_state(pub.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  auto has_caps = [&](const char *name) {
    gobj::Ref<GstPad> p = gobj::adopt(gst_element_get_static_pad(out, name));
    return p && gst_pad_has_current_caps(p.get());
  };
  ASSERT_TRUE(test::wait_for([&] { return has_caps("video_0") && has_caps("audio_0"); }, 15000))
      << relay_bus.error_text();

  auto viewers = join_viewers(out, 3);
  ASSERT_EQ(viewers.size(), 3u);
  EXPECT_TRUE(all_decode(viewers, 30, 50, 20000));
  for (auto &v : viewers) {
    EXPECT_GE(v->video.n(), 30u);
    EXPECT_GE(v->audio.n(), 50u);
  }
  EXPECT_FALSE(relay_bus.has_error()) << relay_bus.error_text();
  gst_element_set_state(pub.get(), GST_STATE_NULL);
  viewers.clear();
  gst_element_set_state(relay.get(), GST_STATE_NULL);
}
