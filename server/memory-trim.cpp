#include "memory-trim.h"

#include <gst/gst.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

GST_DEBUG_CATEGORY_STATIC(memory_trim_debug);
#define GST_CAT_DEFAULT memory_trim_debug

namespace server {

MemoryTrim::MemoryTrim(guint interval_s, gsize min_free_bytes) : min_free_bytes_(min_free_bytes) {
  GST_DEBUG_CATEGORY_INIT(memory_trim_debug, "whip-server-memory", 0, "returning freed memory");
#if defined(__GLIBC__)
  if (interval_s > 0)
    source_ = g_timeout_add_seconds(
        interval_s,
        +[](gpointer self) -> gboolean {
          static_cast<MemoryTrim *>(self)->run_once();
          return G_SOURCE_CONTINUE;
        },
        this);
#else
  (void)interval_s;
#endif
}

MemoryTrim::~MemoryTrim() {
  if (source_) g_source_remove(source_);
}

bool MemoryTrim::run_once() {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  // fordblks: bytes in free chunks of every arena. Cheap next to the trim,
  // which only runs when there is something worth returning.
  const struct mallinfo2 info = mallinfo2();
  if (info.fordblks < min_free_bytes_) return false;
  const gint64 start = g_get_monotonic_time();
  malloc_trim(0);
  GST_DEBUG("malloc_trim: %zu KiB free in the arenas, %" G_GINT64_FORMAT " us", info.fordblks >> 10,
            g_get_monotonic_time() - start);
  return true;
#else
  return false;
#endif
}

}  // namespace server
