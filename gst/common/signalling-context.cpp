#include "signalling-context.h"

#include <condition_variable>
#include <memory>
#include <mutex>

namespace whipwhep {

namespace {
GMainContext *g_ctx = nullptr;

gpointer signalling_thread_main(gpointer data) {
  auto *ctx = static_cast<GMainContext *>(data);
  g_main_context_push_thread_default(ctx);
  GMainLoop *loop = g_main_loop_new(ctx, FALSE);
  g_main_loop_run(loop);  // runs for the life of the process
  g_main_loop_unref(loop);
  return nullptr;
}
}  // namespace

GMainContext *signalling_context() {
  static gsize init = 0;
  if (g_once_init_enter(&init)) {
    g_ctx = g_main_context_new();
    GThread *t = g_thread_new("whipwhep-signal", signalling_thread_main, g_ctx);
    g_thread_unref(t);
    g_once_init_leave(&init, 1);
  }
  return g_ctx;
}

void run_on_signalling_thread(std::function<void()> fn) {
  auto *f = new std::function<void()>(std::move(fn));
  g_main_context_invoke_full(
      signalling_context(), G_PRIORITY_DEFAULT,
      +[](gpointer data) -> gboolean {
        (*static_cast<std::function<void()> *>(data))();
        return G_SOURCE_REMOVE;
      },
      f, +[](gpointer data) { delete static_cast<std::function<void()> *>(data); });
}

bool run_on_signalling_thread_sync(std::function<void()> fn, guint timeout_ms) {
  if (g_main_context_is_owner(signalling_context())) {
    fn();
    return true;
  }
  struct Sync {
    std::mutex m;
    std::condition_variable cv;
    bool finished = false;
  };
  auto sync = std::make_shared<Sync>();
  run_on_signalling_thread([sync, fn = std::move(fn)]() {
    fn();
    std::lock_guard<std::mutex> l(sync->m);
    sync->finished = true;
    sync->cv.notify_all();
  });
  std::unique_lock<std::mutex> l(sync->m);
  return sync->cv.wait_for(l, std::chrono::milliseconds(timeout_ms),
                           [&] { return sync->finished; });
}

}  // namespace whipwhep
