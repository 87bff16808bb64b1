// libFuzzer target: a live-input API request body (POST/PUT), through the
// server's parse_input_fields with the default limits, then, when accepted,
// applied to a record and serialised back as the API would answer.
#include <glib.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "live-input-json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  server::Limits limits;
  server::InputFields fields;
  std::string error;
  if (!server::parse_input_fields(reinterpret_cast<const char *>(data), size, limits, &fields,
                                  &error)) {
    if (error.empty()) __builtin_trap();  // a refusal must say why
    return 0;
  }
  server::LiveInputRecord record;
  record.uid = "0123456789abcdef0123456789abcdef";
  fields.apply_to(&record);
  if (record.meta_json.size() > limits.max_meta_bytes) __builtin_trap();
  server::LiveState live;
  std::string text = server::envelope_success(
      server::live_input_to_json(record, live, "http://127.0.0.1:8080"));
  if (text.empty()) __builtin_trap();
  std::string item = server::envelope_success(server::live_input_list_item(record));
  return 0;
}
