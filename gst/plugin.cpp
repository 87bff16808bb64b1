// The whipwhep plugin: WHIP/WHEP clients and servers around webrtcbin.
#include "config.h"
#include "elements.h"

static gboolean plugin_init(GstPlugin *plugin) {
  gboolean ok = TRUE;
  // One line per element that works (see elements.h).
  ok &= GST_ELEMENT_REGISTER(whipserversrc, plugin);
  ok &= GST_ELEMENT_REGISTER(whipsink, plugin);
  ok &= GST_ELEMENT_REGISTER(whepsrc, plugin);
  ok &= GST_ELEMENT_REGISTER(whepserversink, plugin);
  (void)plugin;
  return ok;
}

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, whipwhep,
                  "WHIP and WHEP clients and servers (publish and play WebRTC live video)",
                  plugin_init, VERSION, GST_LICENSE, GST_PACKAGE_NAME, GST_PACKAGE_ORIGIN)
