// Promise plumbing around webrtcbin's offer/answer, written once so that no
// element blocks on a promise or forgets to check a reply for "error".
//
// All callbacks run on webrtcbin's operation thread or on the signalling
// thread (gathering timeout): they must not block and must not change element
// states (use gst_element_call_async for that).
#pragma once

#include <gst/gst.h>
#include <gst/sdp/sdp.h>

#include <functional>
#include <string>

#include "gobj.h"

namespace whipwhep {

// ok = true: `text` is the SDP; ok = false: `text` says what failed.
using SdpCallback = std::function<void(bool ok, std::string text)>;
// Runs between set-remote-description and create-answer (on webrtcbin's
// thread): the place to set transceiver directions and codec preferences.
// Returns an empty string, or the reason the offer cannot be answered.
using PrepareAnswer = std::function<std::string()>;

// set-remote-description(offer) -> prepare() -> create-answer ->
// set-local-description -> ICE gathering complete (or gather_timeout_ms) ->
// done(true, local SDP with candidates). `offer` is taken (transfer full).
void answer_offer(GstElement *webrtcbin, GstSDPMessage *offer, PrepareAnswer prepare,
                  SdpCallback done, guint gather_timeout_ms = 2000);

// create-offer -> set-local-description -> gathering complete -> done(sdp).
void make_offer(GstElement *webrtcbin, SdpCallback done, guint gather_timeout_ms = 2000);

// set-remote-description(answer) -> done(true, "") or done(false, reason).
// `answer` is taken (transfer full).
void apply_answer(GstElement *webrtcbin, GstSDPMessage *answer, SdpCallback done);

// Calls fn exactly once when webrtcbin's ice-gathering-state is complete or
// after timeout_ms, whichever comes first.
void when_gathering_complete(GstElement *webrtcbin, guint timeout_ms, std::function<void()> fn);

// The current local description as SDP text ("" if none).
std::string local_description_text(GstElement *webrtcbin);

// webrtcbin's internal RTPSession for the bundled transport (rtpbin session
// 0), transfer full; nullptr before negotiation. Its "on-receiving-rtcp"
// tells that the peer is alive; its "stats" carry RTT and feedback counts.
GObject *bundled_rtp_session(GstElement *webrtcbin);

// Makes every receive jitterbuffer webrtcbin creates NACK only real gaps:
// rtpjitterbuffer's default rtx-next-seqnum=TRUE also times the packet that
// has not come yet, so when the sender pauses (a stalled upstream, a
// starved publisher) it NACKs and then declares lost packets that were
// never sent, and drops them as late when they come: a 300-500 ms freeze
// after every pause, and a broken frame. A real loss is still NACKed when
// the next packet shows the gap. Call once, right after creating webrtcbin.
void nack_only_gaps(GstElement *webrtcbin);

// Calls `fn` on each element made by `factory` inside `bin`, at any depth,
// until it returns false.
void for_each_by_factory(GstElement *bin, const char *factory,
                         const std::function<bool(GstElement *)> &fn);
// The first element made by `factory` inside `bin`, at any depth (srtpenc,
// dtlsenc in a webrtcbin, ...); null if none.
gobj::Ref<GstElement> find_by_factory(GstElement *bin, const char *factory);

// Parse SDP text; nullptr + reason on failure.
GstSDPMessage *parse_sdp(const std::string &text, std::string *error);

}  // namespace whipwhep
