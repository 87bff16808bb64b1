// main() for fuzz targets in ordinary builds (-Dfuzzing=false, any compiler):
// runs LLVMFuzzerTestOneInput once on every file of the directories or files
// given, so the committed seed corpora and crash regressions
// (tests/fuzz/corpus/<target>/) run in every `meson test`.
#include <glib.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
extern "C" int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

namespace {

int run_file(const std::string &path) {
  gchar *contents = nullptr;
  gsize length = 0;
  if (!g_file_get_contents(path.c_str(), &contents, &length, nullptr)) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    return 1;
  }
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t *>(contents), length);
  g_free(contents);
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  int files = 0, failures = 0;
  for (int i = 1; i < argc; i++) {
    if (g_file_test(argv[i], G_FILE_TEST_IS_DIR)) {
      GDir *dir = g_dir_open(argv[i], 0, nullptr);
      while (const gchar *name = dir ? g_dir_read_name(dir) : nullptr) {
        gchar *path = g_build_filename(argv[i], name, nullptr);
        failures += run_file(path);
        files++;
        g_free(path);
      }
      if (dir) g_dir_close(dir);
    } else {
      failures += run_file(argv[i]);
      files++;
    }
  }
  std::printf("%d inputs replayed\n", files);
  return failures || files == 0 ? 1 : 0;
}
