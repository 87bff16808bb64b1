// LeanHost (lean-viewer.h): the load generator's one thread, ICE agent and
// pipeline, shared by all its lean viewers, and the direct reads of their
// sockets once media flows.
#include <nice/agent.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <vector>

#include "lean-viewer.h"

namespace bench {
namespace {

constexpr guint kRtcpIntervalMs = 2000;
// Receive batching (see the host thread): 4 ms of 1 Mbit/s is ~500 bytes
// per socket, far below its receive buffer. Once every viewer carries
// media, 16 ms: ~4 KB of 2 Mbit/s, a 60 KB keyframe burst included still
// well within a default 208 KB receive buffer (loss would show in the
// counted sequence numbers).
constexpr gulong kSetupTickUs = 4000;
constexpr gulong kSteadyTickUs = 16000;
// Datagrams per recvmmsg of a directly read socket.
constexpr unsigned kDirectBatch = 16;
constexpr size_t kDirectMaxDatagram = 1500;

}  // namespace

// ------------------------------------------------------------------ LeanHost
LeanHost::LeanHost() {
  // -1: every viewer stays on libnice's reads (BENCH_LEAN_DIRECT=0: the
  // A/B of this, with the 4 ms tick throughout).
  if (g_strcmp0(g_getenv("BENCH_LEAN_DIRECT"), "0") != 0) epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  ctx_ = gobj::adopt(g_main_context_new());
  parking_ctx_ = gobj::adopt(g_main_context_new());
  agent_ = gobj::adopt(
      nice_agent_new_full(ctx_.get(), NICE_COMPATIBILITY_RFC5245, NICE_AGENT_OPTION_REGULAR_NOMINATION));
  // Ta (stun-pacing-timer) paces the checks of all the agent's streams
  // together: libnice's 20 ms made 16 joins in flight take ~600 ms of ICE.
  g_object_set(agent_.get(), "controlling-mode", TRUE, "upnp", FALSE, "ice-tcp", FALSE, "stun-pacing-timer", 2u,
               nullptr);
  NiceAddress addr;
  nice_address_init(&addr);
  nice_address_set_from_string(&addr, "127.0.0.1");
  nice_agent_add_local_address(agent_.get(), &addr);
  g_signal_connect(agent_.get(), "component-state-changed",
                   G_CALLBACK(+[](NiceAgent *, guint stream, guint, guint state, gpointer self) {
                     static_cast<LeanHost *>(self)->on_component_state(stream, state);
                   }),
                   this);
  pipeline_ = gobj::sink(gst_pipeline_new("lean-viewers"));
  // Nobody pops this bus: drop every message (errors are printed once each).
  gobj::Ref<GstBus> bus = gobj::adopt(gst_element_get_bus(pipeline_.get()));
  gst_bus_set_sync_handler(
      bus.get(),
      +[](GstBus *, GstMessage *m, gpointer) {
        gobj::Ref<GstMessage> owned = gobj::adopt(m);  // GST_BUS_DROP: the handler owns it
        if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) {
          gobj::Unique<GError> e;
          gst_message_parse_error(m, gobj::out(e), nullptr);
          fprintf(stderr, "lean viewer: %s: %s\n", GST_OBJECT_NAME(GST_MESSAGE_SRC(m)), e ? e->message : "?");
        }
        return GST_BUS_DROP;
      },
      nullptr, nullptr);
  gst_element_set_state(pipeline_.get(), GST_STATE_PLAYING);
  rtcp_timer_ = gobj::adopt(g_timeout_source_new(kRtcpIntervalMs));
  g_source_set_callback(rtcp_timer_.get(), send_rtcp_all, this, nullptr);
  g_source_attach(rtcp_timer_.get(), ctx_.get());
  thread_ = std::thread([this] {
    // Not g_main_loop_run(): woken per packet, every iteration would poll()
    // and check every viewer's socket source, O(N) per packet (that was
    // most of the generator's CPU). Instead: dispatch whatever is ready,
    // then sleep one tick; each poll() then serves the packets of a tick.
    g_main_context_acquire(ctx_.get());
    g_main_context_push_thread_default(ctx_.get());
    while (!quit_) {
      drain_direct();  // first, so that libnice's poll finds those sockets empty
      while (g_main_context_iteration(ctx_.get(), FALSE) && !quit_) {
      }
      g_usleep(unsettled_ > 0 || epoll_fd_ < 0 ? kSetupTickUs : kSteadyTickUs);
    }
    while (g_main_context_iteration(ctx_.get(), FALSE)) {
    }
    g_main_context_pop_thread_default(ctx_.get());
    g_main_context_release(ctx_.get());
  });
}

LeanHost::~LeanHost() {
  g_source_destroy(rtcp_timer_.get());
  run_sync([this] { g_signal_handlers_disconnect_by_data(agent_.get(), this); });
  quit_ = true;
  thread_.join();
  gst_element_set_state(pipeline_.get(), GST_STATE_NULL);
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

bool LeanHost::watch_direct(int fd, guint stream) {
  if (epoll_fd_ < 0 || fd < 0) return false;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u32 = stream;
  return epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

void LeanHost::unwatch_direct(int fd) { epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr); }

// Not from inside libnice's receive callback, which is dispatching the very
// socket source read_directly() moves away: on an idle of the host thread,
// and only if the viewer is still there (stop() removes it on this thread).
void LeanHost::read_directly_later(guint stream) {
  struct Call {
    LeanHost *host;
    guint stream;
  };
  gobj::Ref<GSource> idle = gobj::adopt(g_idle_source_new());
  g_source_set_callback(
      idle.get(),
      +[](gpointer d) -> gboolean {
        auto *c = static_cast<Call *>(d);
        LeanViewer *v = nullptr;
        {
          std::lock_guard<std::mutex> l(c->host->lock_);
          auto it = c->host->viewers_.find(c->stream);
          if (it != c->host->viewers_.end()) v = it->second;
        }
        if (v) v->read_directly();  // without lock_: it takes libnice's agent lock
        return G_SOURCE_REMOVE;
      },
      new Call{this, stream}, +[](gpointer d) { delete static_cast<Call *>(d); });
  g_source_attach(idle.get(), ctx_.get());
}

// Every ready socket is read until a batch comes back short (the queue was
// empty then): one recvmmsg per socket per tick in the steady state.
void LeanHost::drain_direct() {
  if (epoll_fd_ < 0) return;
  static thread_local std::vector<guint8> arena(kDirectBatch * kDirectMaxDatagram);
  // Set up once: recvmmsg writes only each message's msg_len and flags.
  mmsghdr msgs[kDirectBatch] = {};
  iovec iovs[kDirectBatch];
  for (unsigned k = 0; k < kDirectBatch; k++) {
    iovs[k] = {arena.data() + k * kDirectMaxDatagram, kDirectMaxDatagram};
    msgs[k].msg_hdr.msg_iov = &iovs[k];
    msgs[k].msg_hdr.msg_iovlen = 1;
  }
  epoll_event ready[256];
  // Viewers are removed on this thread only (stop() runs here), so a
  // stream looked up below stays valid while it is read.
  std::lock_guard<std::mutex> l(lock_);
  for (;;) {
    const int n = epoll_wait(epoll_fd_, ready, G_N_ELEMENTS(ready), 0);
    for (int i = 0; i < n; i++) {
      auto it = viewers_.find(ready[i].data.u32);
      if (it == viewers_.end()) continue;
      const int fd = it->second->direct_fd();
      for (int got = kDirectBatch; got == int(kDirectBatch) && fd >= 0;) {
        got = recvmmsg(fd, msgs, kDirectBatch, MSG_DONTWAIT, nullptr);
        for (int k = 0; k < got; k++)
          it->second->on_packet(static_cast<const guint8 *>(iovs[k].iov_base), msgs[k].msg_len);
      }
    }
    if (n < int(G_N_ELEMENTS(ready))) return;
  }
}

void LeanHost::run_sync(const std::function<void()> &fn) {
  if (g_main_context_is_owner(ctx_.get())) return fn();
  struct Call {
    const std::function<void()> *fn;
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
  } call;
  call.fn = &fn;
  g_main_context_invoke(ctx_.get(),
                        +[](gpointer d) -> gboolean {
                          auto *c = static_cast<Call *>(d);
                          (*c->fn)();
                          std::lock_guard<std::mutex> l(c->m);
                          c->done = true;
                          c->cv.notify_one();
                          return G_SOURCE_REMOVE;
                        },
                        &call);
  std::unique_lock<std::mutex> l(call.m);
  call.cv.wait(l, [&] { return call.done; });
}

void LeanHost::run_async(std::function<void()> fn) {
  g_main_context_invoke_full(
      ctx_.get(), G_PRIORITY_DEFAULT,
      +[](gpointer d) -> gboolean {
        (*static_cast<std::function<void()> *>(d))();
        return G_SOURCE_REMOVE;
      },
      new std::function<void()>(std::move(fn)),
      +[](gpointer d) { delete static_cast<std::function<void()> *>(d); });
}

void LeanHost::add_viewer(guint stream, LeanViewer *v) {
  std::lock_guard<std::mutex> l(lock_);
  viewers_[stream] = v;
  unsettled_++;
}

void LeanHost::remove_viewer(guint stream) {
  std::lock_guard<std::mutex> l(lock_);
  viewers_.erase(stream);
}

void LeanHost::on_component_state(guint stream, guint state) {
  std::lock_guard<std::mutex> l(lock_);
  auto it = viewers_.find(stream);
  if (it != viewers_.end()) it->second->on_ice_state(state);
}

gboolean LeanHost::send_rtcp_all(gpointer data) {
  auto *self = static_cast<LeanHost *>(data);
  std::lock_guard<std::mutex> l(self->lock_);
  for (auto &kv : self->viewers_) kv.second->send_rtcp();
  return G_SOURCE_CONTINUE;
}

}  // namespace bench
