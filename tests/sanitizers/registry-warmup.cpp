// Sanitizer builds only: builds the GStreamer registry once, with leak
// detection off, before the real tests run.
//
// Why: an ASan-built plugin cannot be loaded by the (uninstrumented)
// gst-plugin-scanner helper, so sanitizer runs set GST_REGISTRY_FORK=no and
// the scan happens inside the test process. A scan dlopen()s every system
// plugin, and several third-party libraries (fontconfig, OpenNI2 drivers...)
// leak on load. Doing the scan here, in a process whose leaks we ignore,
// keeps those out of every real test without suppressing anything there.
#include <gst/gst.h>

#include <cstdio>
#include <initializer_list>

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  // Fail loudly if the instrumented plugin did not load: every element test
  // would otherwise fail with a confusing "no such element".
  for (const char *name : {"whipsink", "whipserversrc", "whepsrc"}) {
    GstElementFactory *f = gst_element_factory_find(name);
    if (!f) {
      std::fprintf(stderr, "registry-warmup: element %s not found (plugin failed to load?)\n",
                   name);
      return 1;
    }
    gst_object_unref(f);
  }
  std::printf("registry ready\n");
  return 0;
}
