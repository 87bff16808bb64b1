#include "gslice-malloc.h"

#include <glib.h>
#include <unistd.h>

namespace whipwhep {

void reexec_with_gslice_on_malloc(char **argv) {
  if (glib_check_version(2, 76, 0) == nullptr) return;
  if (g_getenv("G_SLICE") != nullptr) return;
  if (!g_setenv("G_SLICE", "always-malloc", TRUE)) return;
  execv("/proc/self/exe", argv);
  // Still here: no /proc, or exec refused. Leave G_SLICE set: children
  // started from now on get it, and this process runs as before.
}

}  // namespace whipwhep
