#include "webrtc-negotiation.h"

#include <gst/webrtc/webrtc.h>

#include <atomic>
#include <memory>
#include <mutex>

#include "gobj.h"
#include "signalling-context.h"

namespace whipwhep {

namespace {

// A promise whose reply is handed to a std::function on webrtcbin's thread.
using ReplyFn = std::function<void(const GstStructure *reply, std::string error)>;

GstPromise *promise_calling(ReplyFn fn) {
  auto *f = new ReplyFn(std::move(fn));
  return gst_promise_new_with_change_func(
      +[](GstPromise *promise, gpointer data) {
        auto &fn = *static_cast<ReplyFn *>(data);
        GstPromiseResult r = gst_promise_wait(promise);
        if (r != GST_PROMISE_RESULT_REPLIED) {
          fn(nullptr, "webrtcbin did not answer (interrupted or expired)");
          return;
        }
        const GstStructure *reply = gst_promise_get_reply(promise);
        if (reply && gst_structure_has_field(reply, "error")) {
          gobj::Unique<GError> err;
          gst_structure_get(reply, "error", G_TYPE_ERROR, static_cast<GError **>(gobj::out(err)),
                            nullptr);
          fn(nullptr, err ? err->message : "webrtcbin reported an error");
          return;
        }
        fn(reply, {});
      },
      f, +[](gpointer data) { delete static_cast<ReplyFn *>(data); });
}

GstWebRTCSessionDescription *take_description(const GstStructure *reply, const char *field) {
  if (!reply) return nullptr;
  GstWebRTCSessionDescription *desc = nullptr;
  // Copy while the reply is alive (the reply owns the boxed value).
  gst_structure_get(reply, field, GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &desc, nullptr);
  return desc;
}

struct GatherWait {
  std::atomic<bool> fired{false};
  gobj::Ref<GstElement> webrtcbin;
  std::function<void()> fn;
  gulong handler = 0;
  std::mutex lock;

  void fire() {
    if (fired.exchange(true)) return;
    {
      std::lock_guard<std::mutex> l(lock);
      if (handler) g_signal_handler_disconnect(webrtcbin.get(), handler);
      handler = 0;
    }
    auto f = std::move(fn);
    f();
  }
};

}  // namespace

GstSDPMessage *parse_sdp(const std::string &text, std::string *error) {
  if (text.empty()) {
    if (error) *error = "empty SDP";
    return nullptr;
  }
  GstSDPMessage *msg = nullptr;
  gst_sdp_message_new(&msg);
  if (gst_sdp_message_parse_buffer(reinterpret_cast<const guint8 *>(text.data()),
                                   static_cast<guint>(text.size()), msg) != GST_SDP_OK ||
      gst_sdp_message_medias_len(msg) == 0) {
    gst_sdp_message_free(msg);
    if (error) *error = "malformed SDP: no media sections could be parsed";
    return nullptr;
  }
  return msg;
}

namespace {

gobj::Ref<GstElement> rtpbin_of(GstElement *webrtcbin) {
  // webrtcbin names its rtpbin "rtpbin" (webrtcbin.c, _create_rtpbin).
  return gobj::adopt(gst_bin_get_by_name(GST_BIN(webrtcbin), "rtpbin"));
}

}  // namespace

GObject *bundled_rtp_session(GstElement *webrtcbin) {
  gobj::Ref<GstElement> rtpbin = rtpbin_of(webrtcbin);
  if (!rtpbin) return nullptr;
  GObject *session = nullptr;
  g_signal_emit_by_name(rtpbin.get(), "get-internal-session", 0u, &session);
  return session;
}

void nack_only_gaps(GstElement *webrtcbin) {
  gobj::Ref<GstElement> rtpbin = rtpbin_of(webrtcbin);
  if (!rtpbin) return;
  g_signal_connect(rtpbin.get(), "new-jitterbuffer",
                   G_CALLBACK(+[](GstElement *, GstElement *jitterbuffer, guint, guint, gpointer) {
                     g_object_set(jitterbuffer, "rtx-next-seqnum", FALSE, nullptr);
                   }),
                   nullptr);
}

void for_each_by_factory(GstElement *bin, const char *factory,
                         const std::function<bool(GstElement *)> &fn) {
  GstIterator *it = gst_bin_iterate_all_by_element_factory_name(GST_BIN(bin), factory);
  GValue item = G_VALUE_INIT;
  bool more = true;
  while (more && gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
    more = fn(GST_ELEMENT(g_value_get_object(&item)));
    g_value_reset(&item);
  }
  g_value_unset(&item);
  gst_iterator_free(it);
}

gobj::Ref<GstElement> find_by_factory(GstElement *bin, const char *factory) {
  gobj::Ref<GstElement> found;
  for_each_by_factory(bin, factory, [&](GstElement *e) {
    found = gobj::ref(e);
    return false;
  });
  return found;
}

std::string local_description_text(GstElement *webrtcbin) {
  GstWebRTCSessionDescription *desc = nullptr;
  g_object_get(webrtcbin, "local-description", &desc, nullptr);
  gobj::Unique<GstWebRTCSessionDescription> holder(desc);
  if (!desc || !desc->sdp) return {};
  gobj::Unique<gchar> text(gst_sdp_message_as_text(desc->sdp));
  return text ? text.get() : "";
}

void when_gathering_complete(GstElement *webrtcbin, guint timeout_ms, std::function<void()> fn) {
  auto wait = std::make_shared<GatherWait>();
  wait->webrtcbin = gobj::ref(webrtcbin);
  wait->fn = std::move(fn);

  auto *holder = new std::shared_ptr<GatherWait>(wait);
  {
    std::lock_guard<std::mutex> l(wait->lock);
    wait->handler = g_signal_connect_data(
        webrtcbin, "notify::ice-gathering-state",
        G_CALLBACK(+[](GstElement *bin, GParamSpec *, gpointer data) {
          GstWebRTCICEGatheringState state;
          g_object_get(bin, "ice-gathering-state", &state, nullptr);
          if (state == GST_WEBRTC_ICE_GATHERING_STATE_COMPLETE)
          {
            // Copy: disconnecting inside fire() may drop the closure's ref.
            auto w = *static_cast<std::shared_ptr<GatherWait> *>(data);
            w->fire();
          }
        }),
        holder,
        +[](gpointer data, GClosure *) { delete static_cast<std::shared_ptr<GatherWait> *>(data); },
        GConnectFlags(0));
  }

  // Bounded: if libnice never reports completion, answer with what we have.
  // The timer holds a strong reference, so fn is called even if webrtcbin
  // goes away first; the wait lives at most timeout_ms.
  auto *timer_holder = new std::shared_ptr<GatherWait>(wait);
  GSource *timer = g_timeout_source_new(timeout_ms);
  g_source_set_callback(
      timer,
      +[](gpointer data) -> gboolean {
        auto w = *static_cast<std::shared_ptr<GatherWait> *>(data);
        w->fire();
        return G_SOURCE_REMOVE;
      },
      timer_holder, +[](gpointer data) { delete static_cast<std::shared_ptr<GatherWait> *>(data); });
  g_source_attach(timer, signalling_context());
  g_source_unref(timer);

  GstWebRTCICEGatheringState state;
  g_object_get(webrtcbin, "ice-gathering-state", &state, nullptr);
  if (state == GST_WEBRTC_ICE_GATHERING_STATE_COMPLETE) wait->fire();
}

void answer_offer(GstElement *webrtcbin, GstSDPMessage *offer, PrepareAnswer prepare,
                  SdpCallback done, guint gather_timeout_ms) {
  auto bin = gobj::ref(webrtcbin);
  auto cb = std::make_shared<SdpCallback>(std::move(done));
  auto prep = std::make_shared<PrepareAnswer>(std::move(prepare));
  GstWebRTCSessionDescription *desc =
      gst_webrtc_session_description_new(GST_WEBRTC_SDP_TYPE_OFFER, offer);
  gobj::Unique<GstWebRTCSessionDescription> desc_holder(desc);

  GstPromise *p1 = promise_calling([bin, cb, prep, gather_timeout_ms](const GstStructure *,
                                                                      std::string err) {
    if (!err.empty()) return (*cb)(false, "cannot apply offer: " + err);
    if (*prep) {
      std::string why = (*prep)();
      if (!why.empty()) return (*cb)(false, why);
    }
    GstPromise *p2 = promise_calling([bin, cb, gather_timeout_ms](const GstStructure *reply,
                                                                  std::string err) {
      if (!err.empty()) return (*cb)(false, "cannot create answer: " + err);
      gobj::Unique<GstWebRTCSessionDescription> answer(take_description(reply, "answer"));
      if (!answer) return (*cb)(false, "webrtcbin created no answer");
      GstPromise *p3 = promise_calling([bin, cb, gather_timeout_ms](const GstStructure *,
                                                                    std::string err) {
        if (!err.empty()) return (*cb)(false, "cannot apply answer: " + err);
        when_gathering_complete(bin.get(), gather_timeout_ms, [bin, cb]() {
          std::string sdp = local_description_text(bin.get());
          if (sdp.empty()) return (*cb)(false, "no local description");
          (*cb)(true, sdp);
        });
      });
      g_signal_emit_by_name(bin.get(), "set-local-description", answer.get(), p3);
      gst_promise_unref(p3);
    });
    g_signal_emit_by_name(bin.get(), "create-answer", nullptr, p2);
    gst_promise_unref(p2);
  });
  g_signal_emit_by_name(webrtcbin, "set-remote-description", desc, p1);
  gst_promise_unref(p1);
}

void make_offer(GstElement *webrtcbin, SdpCallback done, guint gather_timeout_ms) {
  auto bin = gobj::ref(webrtcbin);
  auto cb = std::make_shared<SdpCallback>(std::move(done));
  GstPromise *p1 = promise_calling([bin, cb, gather_timeout_ms](const GstStructure *reply,
                                                                std::string err) {
    if (!err.empty()) return (*cb)(false, "cannot create offer: " + err);
    gobj::Unique<GstWebRTCSessionDescription> offer(take_description(reply, "offer"));
    if (!offer) return (*cb)(false, "webrtcbin created no offer");
    GstPromise *p2 = promise_calling([bin, cb, gather_timeout_ms](const GstStructure *,
                                                                  std::string err) {
      if (!err.empty()) return (*cb)(false, "cannot apply offer: " + err);
      when_gathering_complete(bin.get(), gather_timeout_ms, [bin, cb]() {
        std::string sdp = local_description_text(bin.get());
        if (sdp.empty()) return (*cb)(false, "no local description");
        (*cb)(true, sdp);
      });
    });
    g_signal_emit_by_name(bin.get(), "set-local-description", offer.get(), p2);
    gst_promise_unref(p2);
  });
  g_signal_emit_by_name(webrtcbin, "create-offer", nullptr, p1);
  gst_promise_unref(p1);
}

void apply_answer(GstElement *webrtcbin, GstSDPMessage *answer, SdpCallback done) {
  auto cb = std::make_shared<SdpCallback>(std::move(done));
  GstWebRTCSessionDescription *desc =
      gst_webrtc_session_description_new(GST_WEBRTC_SDP_TYPE_ANSWER, answer);
  gobj::Unique<GstWebRTCSessionDescription> holder(desc);
  GstPromise *p = promise_calling([cb](const GstStructure *, std::string err) {
    if (!err.empty()) return (*cb)(false, "cannot apply answer: " + err);
    (*cb)(true, {});
  });
  g_signal_emit_by_name(webrtcbin, "set-remote-description", desc, p);
  gst_promise_unref(p);
}

}  // namespace whipwhep
