// Big-endian reads and writes of packet fields at any alignment.
//
// Not GST_READ_UINT32_BE: on x86 GStreamer defines it as a plain 32-bit load
// through a cast pointer, which is undefined behaviour (UBSan's
// misaligned-pointer-use) at the odd offsets RTP/RTCP fields sit at inside
// a batch. memcpy compiles to the same single load.
#pragma once

#include <glib.h>

#include <cstring>

namespace whipwhep {

inline guint32 read_be32(const guint8 *p) {
  guint32 v;
  memcpy(&v, p, sizeof v);
  return GUINT32_FROM_BE(v);
}

inline void write_be32(guint8 *p, guint32 v) {
  v = GUINT32_TO_BE(v);
  memcpy(p, &v, sizeof v);
}

}  // namespace whipwhep
