// Header-only RAII holders for GObject-family references.
//
// Every GObject / GstObject / GstMiniObject (caps, buffers, events...) that
// the project holds is held through gobj::Ref<T>; plain-C heap values
// (gchar*, GError*, GstStructure*, GstSDPMessage*...) through gobj::Unique<T>.
// Copy = ref, move = steal, destructor = unref. Transfer-full returns go
// straight into gobj::adopt(); transfer-none into gobj::ref().
#pragma once

#include <gst/gst.h>
#include <gst/sdp/sdp.h>
#include <gst/webrtc/webrtc.h>

#include <memory>
#include <mutex>
#include <type_traits>
#include <string>
#include <utility>

namespace gobj {

// ---- reference-counting traits -------------------------------------------
// Default: any GObject (GstObject included: since GStreamer 1.0 its floating
// reference is GObject's, so g_object_ref_sink() is gst_object_ref_sink()).
template <class T> struct Traits {
  static T *ref(T *p) { return static_cast<T *>(g_object_ref(p)); }
  static T *ref_sink(T *p) { return static_cast<T *>(g_object_ref_sink(p)); }
  static void unref(T *p) { g_object_unref(p); }
};

#define GOBJ_DECLARE_MINIOBJECT(Type)                                     \
  template <> struct Traits<Type> {                                        \
    static Type *ref(Type *p) {                                            \
      return reinterpret_cast<Type *>(                                     \
          gst_mini_object_ref(GST_MINI_OBJECT_CAST(p)));                   \
    }                                                                      \
    static Type *ref_sink(Type *p) { return ref(p); }                      \
    static void unref(Type *p) { gst_mini_object_unref(GST_MINI_OBJECT_CAST(p)); } \
  };

#define GOBJ_DECLARE_BOXED(Type, ref_fn, unref_fn)                        \
  template <> struct Traits<Type> {                                        \
    static Type *ref(Type *p) { return ref_fn(p); }                        \
    static Type *ref_sink(Type *p) { return ref_fn(p); }                   \
    static void unref(Type *p) { unref_fn(p); }                            \
  };

GOBJ_DECLARE_MINIOBJECT(GstCaps)
GOBJ_DECLARE_MINIOBJECT(GstBuffer)
GOBJ_DECLARE_MINIOBJECT(GstBufferList)
GOBJ_DECLARE_MINIOBJECT(GstEvent)
GOBJ_DECLARE_MINIOBJECT(GstMessage)
GOBJ_DECLARE_MINIOBJECT(GstQuery)
GOBJ_DECLARE_MINIOBJECT(GstSample)
GOBJ_DECLARE_MINIOBJECT(GstPromise)
GOBJ_DECLARE_BOXED(GBytes, g_bytes_ref, g_bytes_unref)
GOBJ_DECLARE_BOXED(GMainContext, g_main_context_ref, g_main_context_unref)
GOBJ_DECLARE_BOXED(GMainLoop, g_main_loop_ref, g_main_loop_unref)
GOBJ_DECLARE_BOXED(GSource, g_source_ref, g_source_unref)
GOBJ_DECLARE_BOXED(GHashTable, g_hash_table_ref, g_hash_table_unref)

// ---- Ref<T> ---------------------------------------------------------------
template <class T> class Ref {
 public:
  Ref() = default;
  Ref(std::nullptr_t) {}
  Ref(const Ref &o) : p_(o.p_ ? Traits<T>::ref(o.p_) : nullptr) {}
  Ref(Ref &&o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  ~Ref() { reset(); }
  Ref &operator=(Ref o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }

  // Take ownership of a transfer-full reference.
  static Ref adopt(T *p) {
    Ref r;
    r.p_ = p;
    return r;
  }
  // Add a reference to a transfer-none pointer.
  static Ref ref(T *p) {
    Ref r;
    r.p_ = p ? Traits<T>::ref(p) : nullptr;
    return r;
  }
  // For freshly created possibly-floating objects (gst_element_factory_make).
  static Ref sink(T *p) {
    Ref r;
    r.p_ = p ? Traits<T>::ref_sink(p) : nullptr;
    return r;
  }

  T *get() const { return p_; }
  T *operator->() const { return p_; }
  explicit operator bool() const { return p_ != nullptr; }
  T *release() { return std::exchange(p_, nullptr); }
  void reset() {
    if (T *p = std::exchange(p_, nullptr)) Traits<T>::unref(p);
  }
  // Out-parameter for g_object_get() and friends: releases the old value.
  T **out() {
    reset();
    return &p_;
  }
  bool operator==(const Ref &o) const { return p_ == o.p_; }
  bool operator!=(const Ref &o) const { return p_ != o.p_; }

 private:
  T *p_ = nullptr;
};

template <class T> Ref<T> adopt(T *p) { return Ref<T>::adopt(p); }
template <class T> Ref<T> ref(T *p) { return Ref<T>::ref(p); }
template <class T> Ref<T> sink(T *p) { return Ref<T>::sink(p); }

// ---- Unique<T> for non-refcounted C values -------------------------------
template <class T> struct Deleter;
#define GOBJ_DECLARE_DELETER(Type, fn)                      \
  template <> struct Deleter<Type> {                         \
    void operator()(Type *p) const { if (p) fn(p); }         \
  };
GOBJ_DECLARE_DELETER(gchar, g_free)
GOBJ_DECLARE_DELETER(gchar *, g_strfreev)
GOBJ_DECLARE_DELETER(GError, g_error_free)
GOBJ_DECLARE_DELETER(GstStructure, gst_structure_free)
GOBJ_DECLARE_DELETER(GstSDPMessage, gst_sdp_message_free)
GOBJ_DECLARE_DELETER(GstWebRTCSessionDescription, gst_webrtc_session_description_free)
GOBJ_DECLARE_DELETER(GUri, g_uri_unref)

template <class T> using Unique = std::unique_ptr<T, Deleter<T>>;

// Out-parameter helper for Unique: `f(&*out(u))` style is error prone, so:
//   gobj::Unique<GError> err; foo(..., gobj::out(err));
// Varargs (g_object_get, gst_structure_get, ...) do not apply the conversion:
// an OutPtr passed through "..." is the object itself (UB; clang traps), so
// cast there: g_object_get(o, "p", static_cast<GstStructure **>(out(s)), NULL).
template <class T> class OutPtr {
 public:
  explicit OutPtr(Unique<T> &u) : u_(u) {}
  ~OutPtr() { u_.reset(p_); }
  operator T **() { return &p_; }

 private:
  Unique<T> &u_;
  T *p_ = nullptr;
};
template <class T> OutPtr<T> out(Unique<T> &u) { return OutPtr<T>(u); }

inline std::string str_or(const gchar *s, const char *fallback = "") {
  return s ? std::string(s) : std::string(fallback);
}

// Registers a static type by name unless it exists. The plugin and a
// program that also links the common library (the tests) each carry a copy
// of the code defining our internal types: the first copy to run registers
// them, the other uses them by name (G_DEFINE_TYPE would register twice and
// fail). `registered` (optional) says whether this call did.
inline GType register_type_once(const char *name, GType parent, gsize class_size,
                                GClassInitFunc class_init, gsize instance_size,
                                GInstanceInitFunc instance_init, bool *registered = nullptr) {
  static std::mutex lock;
  std::lock_guard<std::mutex> g(lock);
  if (registered) *registered = false;
  if (GType existing = g_type_from_name(name)) return existing;
  if (registered) *registered = true;
  return g_type_register_static_simple(parent, g_intern_static_string(name), guint(class_size),
                                       class_init, guint(instance_size), instance_init,
                                       GTypeFlags(0));
}

}  // namespace gobj
