#!/bin/sh
# Publish a live test picture and tone over WHIP.
#   publish.sh WHIP_URL [TOKEN]
# Environment: ICE_ADDRESSES (local addresses ICE may use, e.g. 127.0.0.1),
# CODEC (vp8 | h264, default vp8), SIZE (default 640x360).
set -eu
url=$1
token=${2:-}
size=${SIZE:-640x360}
w=${size%x*}
h=${size#*x}
exec gst-launch-1.0 -e \
  videotestsrc is-live=true pattern=ball ! video/x-raw,width="$w",height="$h",framerate=30/1 ! \
    timeoverlay ! \
    whipsink name=pub whip-endpoint="$url" auth-token="$token" \
      video-codec="${CODEC:-vp8}" ice-addresses="${ICE_ADDRESSES:-}" \
  audiotestsrc is-live=true wave=sine ! audio/x-raw,channels=2 ! pub.audio_0
