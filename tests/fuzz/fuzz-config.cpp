// libFuzzer target: the server's configuration loader. The input is split at
// the first NUL byte: before it, key-file text loaded over the built-in
// defaults (load_config_data); after it, a pipeline template checked by
// validate_pipeline_template (gst_parse_launch + the src/sink name checks)
// and expand_pipeline_template.
//
// The template half only runs for short templates that name no element
// factory but ours, queue, identity, tee and fakesink, and no URI: the
// point is the parser and our checks, not every installed plugin (some leak
// or do I/O when created).
#include <gst/gst.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "server/config.h"  // not the build root's config.h

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  gst_init(nullptr, nullptr);
  return 0;
}

namespace {

bool safe_template(const std::string &t) {
  if (t.size() > 512 || t.find(":/") != std::string::npos) return false;  // no URI handlers
  static const char *const allowed[] = {"whipserversrc", "whepserversink", "queue", "identity",
                                        "tee", "fakesink"};
  size_t i = 0;
  while (i < t.size()) {
    size_t j = i;
    while (j < t.size() && (g_ascii_isalnum(t[j]) || t[j] == '-' || t[j] == '_')) j++;
    if (j > i) {
      const std::string word = t.substr(i, j - i);
      bool ok = false;
      for (const char *a : allowed) ok = ok || word == a;
      if (!ok) {
        // Property names and values are fine; other element factories are not.
        GstElementFactory *f = gst_element_factory_find(word.c_str());
        if (f) {
          gst_object_unref(f);
          return false;
        }
      }
      i = j;
    } else {
      i++;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *p = reinterpret_cast<const char *>(data);
  const void *nul = std::memchr(p, 0, size);
  const size_t key_len = nul ? static_cast<size_t>(static_cast<const char *>(nul) - p) : size;
  {
    server::Config config;
    GError *error = nullptr;
    if (server::load_config_data(server::embedded_default_config(), "defaults", &config,
                                 &error)) {
      if (!server::load_config_data(std::string(p, key_len), "fuzz", &config, &error)) {
        if (!error) __builtin_trap();  // a refusal must say why
      }
    }
    g_clear_error(&error);
    std::string host;
    guint port = 0;
    if (!server::parse_listen(std::string(p, key_len), &host, &port, &error) && !error)
      __builtin_trap();
    g_clear_error(&error);
  }
  if (nul) {
    const std::string tmpl(static_cast<const char *>(nul) + 1, size - key_len - 1);
    if (safe_template(tmpl)) {
      GError *error = nullptr;
      if (!server::validate_pipeline_template(tmpl, "/nonexistent/whipwhep-fuzz", &error) &&
          !error)
        __builtin_trap();
      (void)server::expand_pipeline_template(tmpl, "0123456789abcdef0123456789abcdef",
                                             "/nonexistent/whipwhep-fuzz");
      g_clear_error(&error);
    }
  }
  return 0;
}
