// gtest main for every test binary: the gst-check equivalent. Initialises
// GStreamer (the plugin comes from the build tree through GST_PLUGIN_PATH,
// set by tests/meson.build) and turns GLib criticals into test failures.
#include <gst/gst.h>
#include <gtest/gtest.h>

// Present (non-null) only in sanitizer builds: prints the calling stack.
extern "C" void __sanitizer_print_stack_trace() __attribute__((weak));

namespace {

// The one critical from a library that is not a test failure, kept as
// narrow as the text allows. GStreamer 1.22's rtpsession RTCP thread
// (rtp_session_on_timeout, libgstrtpmanager) iterates a session's sources
// table with g_hash_table_foreach while another thread changes it; GLib
// notices and stops that one iteration. Seen intermittently with 20 viewers
// under ASan and at 500+ viewers; our code never calls g_hash_table_foreach
// (`grep -r g_hash_table_foreach gst server` is empty). Still printed, so it
// stays visible.
bool known_third_party_critical(const gchar *domain, const gchar *message) {
  return domain && message && g_str_equal(domain, "GLib") &&
         g_str_equal(message,
                     "g_hash_table_foreach: assertion 'version == hash_table->version' failed");
}

void log_handler(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer) {
  g_log_default_handler(domain, level, message, nullptr);
  if ((level & G_LOG_LEVEL_CRITICAL) && !(level & G_LOG_FLAG_FATAL) &&
      known_third_party_critical(domain, message)) {
    g_printerr("known GStreamer 1.22 rtpsession race (tests/common/main.cpp), not a failure\n");
    return;
  }
  if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_FLAG_FATAL)) {
    // Under ASan, say where: a critical from a GStreamer thread is otherwise
    // only a message.
    if (__sanitizer_print_stack_trace) __sanitizer_print_stack_trace();
    ADD_FAILURE() << "GLib critical in " << (domain ? domain : "?") << ": " << message;
  }
}

class GstEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    gst_init(nullptr, nullptr);
    g_log_set_default_handler(log_handler, nullptr);
    g_log_set_handler("GStreamer", GLogLevelFlags(G_LOG_LEVEL_CRITICAL), log_handler, nullptr);
    g_log_set_handler("GLib-GObject", GLogLevelFlags(G_LOG_LEVEL_CRITICAL), log_handler, nullptr);
    g_log_set_handler("GLib", GLogLevelFlags(G_LOG_LEVEL_CRITICAL), log_handler, nullptr);
  }
};

}  // namespace

int main(int argc, char **argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new GstEnvironment());
  return RUN_ALL_TESTS();
}
