#include "publisher-session.h"

#include <gst/webrtc/webrtc.h>

#include "sdp-codecs.h"

namespace whipwhep {

namespace {

constexpr gint64 kNoMediaAtStartUs = 10 * G_USEC_PER_SEC;   // answer -> first RTP
constexpr gint64 kIceDisconnectedUs = 8 * G_USEC_PER_SEC;   // disconnected -> gone

GstPadProbeReturn chain_output_probe(GstPad *, GstPadProbeInfo *info, gpointer data) {
  auto *session = static_cast<PublisherSession *>(data);
  if (session->closing) return GST_PAD_PROBE_DROP;
  if (info->type & (GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST)) {
    session->last_media = g_get_monotonic_time();
    return GST_PAD_PROBE_OK;
  }
  if (info->type & GST_PAD_PROBE_TYPE_EVENT_BOTH) {
    switch (GST_EVENT_TYPE(GST_PAD_PROBE_INFO_EVENT(info))) {
      case GST_EVENT_EOS:
      case GST_EVENT_FLUSH_START:
      case GST_EVENT_FLUSH_STOP:
        return GST_PAD_PROBE_DROP;  // the element's pads outlive the publisher
      default:
        break;
    }
  }
  return GST_PAD_PROBE_OK;
}

}  // namespace

void PublisherSession::update_ice_state() {
  if (!webrtcbin) return;
  GstWebRTCICEConnectionState ice;
  GstWebRTCPeerConnectionState pc;
  g_object_get(webrtcbin.get(), "ice-connection-state", &ice, "connection-state", &pc, nullptr);
  if (ice == GST_WEBRTC_ICE_CONNECTION_STATE_FAILED ||
      pc == GST_WEBRTC_PEER_CONNECTION_STATE_FAILED)
    ice_failed = true;
  if (ice == GST_WEBRTC_ICE_CONNECTION_STATE_DISCONNECTED) {
    gint64 expected = 0;
    ice_bad_since.compare_exchange_strong(expected, g_get_monotonic_time());
  } else {
    ice_bad_since = 0;
  }
}

const char *PublisherSession::gone_reason(gint64 now) const {
  const gint64 bad = ice_bad_since;
  if (ice_failed) return "ICE or DTLS failed";
  if (bad && now - bad > kIceDisconnectedUs) return "ICE disconnected";
  if (!announced && now - created > kNoMediaAtStartUs) return "no media arrived";
  if (announced && now - last_media > media_timeout_us) return "media stopped";
  return nullptr;
}

void PublisherSession::sink_unexpected_stream(GstBin *bin, GstPad *pad) {
  GstElement *sink = gst_element_factory_make("fakesink", nullptr);
  g_object_set(sink, "async", FALSE, "sync", FALSE, nullptr);
  gst_bin_add(bin, sink);
  gst_element_sync_state_with_parent(sink);
  gobj::Ref<GstPad> sp = gobj::adopt(gst_element_get_static_pad(sink, "sink"));
  gst_pad_link(pad, sp.get());
  Chain c;
  c.elements.push_back(gobj::ref(sink));
  std::lock_guard<std::mutex> l(lock);
  chains.push_back(c);
}

PublisherSession::ChainError PublisherSession::build_chain(GstBin *bin, const MlinePlan &p,
                                                           GstPad *pad, Chain *chain,
                                                           std::string *what) {
  auto recipe = depay_chain_for(p.codec.encoding);
  *what = p.codec.encoding;
  if (!recipe) return ChainError::MissingElement;
  chain->output = p.output;
  chain->webrtc_pad = gobj::ref(pad);
  for (const char *f : {recipe->depayloader, recipe->parser, "capsfilter"}) {
    if (!f) continue;
    GstElement *e = gst_element_factory_make(f, nullptr);
    if (!e) {
      *what = f;
      return ChainError::MissingElement;
    }
    chain->elements.push_back(gobj::sink(e));
  }
  GstElement *depay = chain->elements.front().get();
  // Recover from loss by asking for a keyframe instead of decoding garbage.
  if (g_object_class_find_property(G_OBJECT_GET_CLASS(depay), "request-keyframe"))
    g_object_set(depay, "request-keyframe", TRUE, "wait-for-keyframe", TRUE, nullptr);
  if (recipe->parser && g_str_equal(recipe->parser, "h264parse"))
    g_object_set(chain->elements[1].get(), "config-interval", -1, nullptr);
  gobj::Ref<GstCaps> caps = gobj::adopt(gst_caps_from_string(recipe->output_caps));
  g_object_set(chain->elements.back().get(), "caps", caps.get(), nullptr);

  for (auto &e : chain->elements) gst_bin_add(bin, e.get());
  {
    // Tracked from here on, so teardown removes them even if linking fails.
    std::lock_guard<std::mutex> l(lock);
    Chain tracked;
    tracked.elements = chain->elements;
    chains.push_back(tracked);
  }
  bool linked = true;
  for (size_t i = 0; i + 1 < chain->elements.size(); i++)
    linked = linked && gst_element_link(chain->elements[i].get(), chain->elements[i + 1].get());
  chain->src = gobj::adopt(gst_element_get_static_pad(chain->elements.back().get(), "src"));
  gst_pad_add_probe(chain->src.get(),
                    GstPadProbeType(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST |
                                    GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM |
                                    GST_PAD_PROBE_TYPE_EVENT_FLUSH),
                    chain_output_probe, this, nullptr);
  for (auto &e : chain->elements) gst_element_sync_state_with_parent(e.get());
  gobj::Ref<GstPad> sink = gobj::adopt(gst_element_get_static_pad(depay, "sink"));
  if (!linked || GST_PAD_LINK_FAILED(gst_pad_link(pad, sink.get()))) return ChainError::LinkFailed;
  return ChainError::None;
}

}  // namespace whipwhep
