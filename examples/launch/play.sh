#!/bin/sh
# Play a WHEP stream: decoded video and audio to the default sinks.
#   play.sh WHEP_URL
# Environment: ICE_ADDRESSES, VIDEO_SINK (default autovideosink),
# AUDIO_SINK (default autoaudiosink), GST_LAUNCH_FLAGS (e.g. -v).
set -eu
url=$1
# shellcheck disable=SC2086
exec gst-launch-1.0 ${GST_LAUNCH_FLAGS:-} \
  whepsrc name=play whep-endpoint="$url" ice-addresses="${ICE_ADDRESSES:-}" \
  play.video_0 ! queue max-size-buffers=2 leaky=downstream ! videoconvert ! ${VIDEO_SINK:-autovideosink} \
  play.audio_0 ! queue ! audioconvert ! audioresample ! ${AUDIO_SINK:-autoaudiosink}
