#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

// One line per element that works; an element is registered only when it does.
GST_ELEMENT_REGISTER_DECLARE(whipserversrc);
GST_ELEMENT_REGISTER_DECLARE(whipsink);
GST_ELEMENT_REGISTER_DECLARE(whepserversink);
GST_ELEMENT_REGISTER_DECLARE(whepsrc);

G_END_DECLS
