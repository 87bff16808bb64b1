#include "input-payloader.h"

namespace whipwhep {

gobj::Ref<GstElement> make_payloader(const std::string &name, const char **factory_out) {
  const char *factory = nullptr;
  int pt = 96;
  if (name == "application/x-rtp") factory = "identity";
  else if (name == "video/x-vp8") factory = "rtpvp8pay", pt = 96;
  else if (name == "video/x-vp9") factory = "rtpvp9pay", pt = 98;
  else if (name == "video/x-h264") factory = "rtph264pay", pt = 102;
  else if (name == "audio/x-opus") factory = "rtpopuspay", pt = 111;
  *factory_out = factory;
  if (name == "video/x-h264") {
    // SPS/PPS with every IDR access unit, so a joining viewer can decode at
    // once: inserted by h264parse per access unit (also from avc codec_data).
    // Not by rtph264pay's config-interval, which in GStreamer 1.22 inserts
    // them before every IDR *slice* and so splits a multi-slice keyframe in
    // two: decoders then lose all but its last slice.
    GstElement *bin = gst_parse_bin_from_description(
        "h264parse config-interval=-1 ! rtph264pay pt=102 mtu=1200 aggregate-mode=zero-latency",
        TRUE, nullptr);
    return bin ? gobj::sink(bin) : gobj::Ref<GstElement>();
  }
  gobj::Ref<GstElement> pay;
  if (factory) pay = gobj::sink(gst_element_factory_make(factory, nullptr));
  if (!pay) return pay;
  if (name != "application/x-rtp") {
    g_object_set(pay.get(), "pt", guint(pt), "mtu", guint(1200), nullptr);
    if (name != "audio/x-opus") {
      gst_util_set_object_arg(G_OBJECT(pay.get()), "picture-id-mode", "15-bit");
    }
  } else {
    g_object_set(pay.get(), "silent", TRUE, nullptr);
  }
  return pay;
}

void answer_caps_queries_from_template(GstPad *ghost) {
  gst_pad_add_probe(
      ghost, GST_PAD_PROBE_TYPE_QUERY_DOWNSTREAM,
      +[](GstPad *pad, GstPadProbeInfo *info, gpointer) -> GstPadProbeReturn {
        GstQuery *q = GST_PAD_PROBE_INFO_QUERY(info);
        gobj::Ref<GstPad> target = gobj::adopt(gst_ghost_pad_get_target(GST_GHOST_PAD(pad)));
        if (target) return GST_PAD_PROBE_OK;
        gobj::Ref<GstCaps> templ = gobj::adopt(gst_pad_get_pad_template_caps(pad));
        if (GST_QUERY_TYPE(q) == GST_QUERY_CAPS) {
          GstCaps *filter = nullptr;
          gst_query_parse_caps(q, &filter);
          gobj::Ref<GstCaps> res =
              filter ? gobj::adopt(gst_caps_intersect_full(filter, templ.get(), GST_CAPS_INTERSECT_FIRST))
                     : templ;
          gst_query_set_caps_result(q, res.get());
          return GST_PAD_PROBE_HANDLED;
        }
        if (GST_QUERY_TYPE(q) == GST_QUERY_ACCEPT_CAPS) {
          GstCaps *caps = nullptr;
          gst_query_parse_accept_caps(q, &caps);
          gst_query_set_accept_caps_result(q, caps && gst_caps_can_intersect(caps, templ.get()));
          return GST_PAD_PROBE_HANDLED;
        }
        return GST_PAD_PROBE_OK;
      },
      nullptr, nullptr);
}

}  // namespace whipwhep
