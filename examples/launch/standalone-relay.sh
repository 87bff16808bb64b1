#!/bin/sh
# A relay with nothing but gst-launch: WHIP in on :8190/whip, WHEP out on
# :8191/whep, no transcoding (whepserversink payloads once, fans out).
#   standalone-relay.sh [WHIP_PORT] [WHEP_PORT]
# Environment: ICE_ADDRESSES, GST_LAUNCH_FLAGS (e.g. -v).
set -eu
# shellcheck disable=SC2086
exec gst-launch-1.0 ${GST_LAUNCH_FLAGS:-} \
  whepserversink name=out port="${2:-8191}" ice-addresses="${ICE_ADDRESSES:-}" \
  whipserversrc name=in port="${1:-8190}" ice-addresses="${ICE_ADDRESSES:-}" \
  in.video_0 ! queue ! out.video_0 \
  in.audio_0 ! queue ! out.audio_0
