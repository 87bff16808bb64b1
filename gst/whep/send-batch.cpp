#include "send-batch.h"

#include <errno.h>
#include <string.h>

#include <algorithm>

#include "config.h"
#include "direct-send.h"

#ifdef HAVE_LIBURING
#include <liburing.h>
#endif

#include <gst/gst.h>

GST_DEBUG_CATEGORY_EXTERN(whepserversink_debug);
#define GST_CAT_DEFAULT whepserversink_debug

namespace whipwhep {

#ifdef HAVE_LIBURING
struct SendBatch::Ring {
  io_uring ring{};
  bool live = false;  // io_uring_queue_init succeeded
  ~Ring() {
    if (live) io_uring_queue_exit(&ring);
  }
};
#else
struct SendBatch::Ring {};
#endif

SendBatch *SendBatch::for_this_thread() {
  // Per thread: 0 not tried yet, 1 usable, -1 not available here.
  static thread_local int state = 0;
  static thread_local std::unique_ptr<SendBatch> batch;
  if (state == 0) {
    const gchar *env = g_getenv("WHIPWHEP_IO_URING");
    std::unique_ptr<SendBatch> b(new SendBatch());
    if ((env && g_strcmp0(env, "0") == 0) || !b->setup()) {
      state = -1;
    } else {
      batch = std::move(b);
      state = 1;
    }
  }
  if (state == 1 && !batch->ring_) state = -1;  // abandoned after a failure
  return state == 1 ? batch.get() : nullptr;
}

bool SendBatch::setup() {
#ifdef HAVE_LIBURING
  auto r = std::make_unique<Ring>();
  // One thread submits; completions are only read by that thread while it
  // waits in flush(); keep going past a message that fails to submit.
  unsigned flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER;
  int e = io_uring_queue_init(kMessages, &r->ring, flags);
  if (e == -EINVAL) e = io_uring_queue_init(kMessages, &r->ring, 0);  // an older kernel
  if (e < 0) {
    GST_INFO("direct send: no io_uring (%s), one sendmmsg per viewer", g_strerror(-e));
    return false;
  }
  r->live = true;
  ring_ = std::move(r);
  bytes_.reset(new guint8[kBytes]);
  iovs_.resize(kIovs);
  msgs_.resize(kMessages);
  controls_.resize(kMessages);
  names_.resize(kMessages);
  entries_.reserve(kMessages);
  GST_INFO("direct send: io_uring batches for this sender thread");
  return true;
#else
  return false;
#endif
}

SendBatch::~SendBatch() {
  if (!entries_.empty()) flush();
}

bool SendBatch::fits(guint packets, size_t packet_len, guint messages) const {
  // Each packet's space is rounded up to 16 bytes (commit_packet).
  return ring_ && bytes_used_ + packets * (packet_len + 15) <= kBytes &&
         iovs_used_ + packets <= kIovs && entries_.size() + messages <= kMessages;
}

bool SendBatch::reserve(guint packets, size_t packet_len, guint messages) {
  if (!fits(packets, packet_len, messages) && !entries_.empty()) flush();
  return fits(packets, packet_len, messages);
}

void SendBatch::commit_packet(size_t len) {
  iovs_[iovs_used_++] = {bytes_.get() + bytes_used_, len};
  bytes_used_ += (len + 15) & ~size_t(15);
}

msghdr *SendBatch::next_message(sockaddr_storage **name, char **control, size_t *control_len) {
  const size_t i = entries_.size();
  msgs_[i] = msghdr{};
  *name = &names_[i];
  *control = controls_[i].bytes;
  *control_len = sizeof controls_[i].bytes;
  return &msgs_[i];
}

bool SendBatch::queue(int fd, guint packets, const std::shared_ptr<DirectSender> &owner,
                      std::atomic<guint64> *sent) {
#ifdef HAVE_LIBURING
  const size_t i = entries_.size();
  // fits() left room: the ring has kMessages entries and nothing else is
  // in it between flushes, so this only fails if that is broken.
  io_uring_sqe *sqe = i < kMessages && ring_ ? io_uring_get_sqe(&ring_->ring) : nullptr;
  if (!sqe) return false;
  io_uring_prep_sendmsg(sqe, fd, &msgs_[i], MSG_DONTWAIT);
  io_uring_sqe_set_data64(sqe, i);
  owner->inflight_.fetch_add(1);
  entries_.push_back(Entry{owner, sent, packets});
  iovs_queued_ = iovs_used_;
  return true;
#else
  return false;
#endif
}

void SendBatch::flush() {
#ifdef HAVE_LIBURING
  const guint n = guint(entries_.size());
  if (n > 0) {
    // Everything queued goes in (a signal may interrupt io_uring_enter
    // after some of it did: what is still in the submission queue says).
    int r = 0;
    while (io_uring_sq_ready(&ring_->ring) > 0) {
      r = io_uring_submit(&ring_->ring);
      if (r < 0 && r != -EINTR && r != -EAGAIN) break;
    }
    const guint submitted = n - std::min(n, io_uring_sq_ready(&ring_->ring));
    if (submitted < n)
      GST_WARNING("direct send: io_uring submit: %s; one sendmmsg per viewer from now on",
                  g_strerror(-r));
    // UDP sends complete while they are submitted; this only reaps.
    guint seen = 0;
    while (seen < submitted) {
      io_uring_cqe *cqe = nullptr;
      int w = io_uring_wait_cqe(&ring_->ring, &cqe);
      if (w == -EINTR) continue;
      if (w < 0) break;
      const size_t i = size_t(io_uring_cqe_get_data64(cqe));
      const int res = cqe->res;
      io_uring_cqe_seen(&ring_->ring, cqe);
      if (i >= entries_.size() || !entries_[i].owner) continue;
      Entry &e = entries_[i];
      e.owner->batch_done(msgs_[i], e.packets, res, e.sent);
      e.owner->inflight_done();
      e.owner.reset();
      seen++;
    }
    if (seen < n) {
      abandon();
      return;
    }
  }
#endif
  entries_.clear();
  bytes_used_ = 0;
  iovs_used_ = iovs_queued_ = 0;
}

void SendBatch::abandon() {
  for (size_t i = 0; i < entries_.size(); i++) {
    Entry &e = entries_[i];
    if (!e.owner) continue;
    e.owner->batch_done(msgs_[i], e.packets, -ECANCELED, e.sent);
    e.owner->inflight_done();
    e.owner.reset();
  }
  entries_.clear();
  // The ring may still hold references to the arena: the arena is kept
  // (this thread's batch is never used again) and the ring torn down.
  ring_.reset();
  bytes_used_ = 0;
  iovs_used_ = iovs_queued_ = 0;
}

}  // namespace whipwhep
