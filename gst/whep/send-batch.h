// Many viewers' UDP sends gathered and handed to the kernel in one system
// call (io_uring), for a fan-out sender thread (fanout.h, direct-send.h).
//
// Why: after SRTP, the per-viewer cost of the direct send path is mostly
// the system call: each list a sender thread drains went out as one
// sendmmsg() per viewer. On this project's bench machine (a VM) a system
// call costs ~1.1 us before it does anything, about a fifth of a viewer's
// share of the relay's CPU. Queued here instead, the protected packets of
// every viewer a sender serves for one list leave in one io_uring_enter().
//
// Lifetime: what is queued (packets, iovecs, message headers) lives in this
// batch's fixed arena until flush(), which submits, waits for every
// completion (UDP sends complete while they are submitted: MSG_DONTWAIT, so
// a full socket buffer fails at once with EAGAIN instead of waiting) and
// only then lets the arena be reused. A sender of queued messages is kept
// alive and cannot close its socket until then (DirectSender::close waits).
//
// One batch per thread (for_this_thread), never shared: the ring is set up
// for a single issuer. Where io_uring is unavailable (an old kernel, a
// seccomp profile that forbids it, the build lacks liburing) or disabled
// with WHIPWHEP_IO_URING=0, for_this_thread() is null and each viewer's
// packets leave in their own sendmmsg as before.
#pragma once

#include <glib.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <atomic>
#include <memory>
#include <vector>

namespace whipwhep {

class DirectSender;

class SendBatch {
 public:
  // The calling thread's batch, set up on first use; null when io_uring
  // cannot be used (see above).
  static SendBatch *for_this_thread();

  // Whether `packets` packets of up to `packet_len` bytes each, in up to
  // `messages` messages, fit in what is left.
  bool fits(guint packets, size_t packet_len, guint messages) const;
  // The same, after flushing what is queued if they do not fit. Call while
  // holding no sender's lock (a flush takes those of the senders queued).
  bool reserve(guint packets, size_t packet_len, guint messages);
  // Where the next packet is written (fits() said how much room is left).
  guint8 *packet_space() { return bytes_.get() + bytes_used_; }
  // The packet just written into packet_space(), `len` bytes, becomes the
  // next iovec.
  void commit_packet(size_t len);
  // The iovecs committed since the last queue(), to be grouped into
  // messages by the caller (DirectSender's GSO grouping).
  iovec *pending_iovs() { return &iovs_[iovs_queued_]; }
  guint pending_count() const { return iovs_used_ - iovs_queued_; }
  // The next message header, zeroed, with its own space for the peer's
  // address and for a control message (one UDP_SEGMENT).
  msghdr *next_message(sockaddr_storage **name, char **control, size_t *control_len);
  // Queues the message from next_message(), covering `packets` packets,
  // for sendmsg on `fd` by `owner` (kept alive until flush); `sent` (may be
  // null) is decremented by the packets that fail, and the owner counts
  // them as dropped. False if the ring has no room (fits() said it had):
  // the caller sends the message itself.
  bool queue(int fd, guint packets, const std::shared_ptr<DirectSender> &owner,
             std::atomic<guint64> *sent);
  // Forgets the committed packets no message was queued for.
  void discard_pending() { iovs_used_ = iovs_queued_; }
  // Submits what is queued and waits for every completion.
  void flush();
  bool empty() const { return entries_.empty(); }

  ~SendBatch();
  SendBatch(const SendBatch &) = delete;
  SendBatch &operator=(const SendBatch &) = delete;

  // Sizes of the arena: enough for one list (a keyframe is ~60-100
  // packets) for a few hundred viewers' audio, or tens of viewers' keyframes,
  // between flushes.
  static constexpr size_t kBytes = 2 << 20;
  static constexpr guint kIovs = 2048;
  static constexpr guint kMessages = 256;  // the ring's submission entries

 private:
  SendBatch() = default;
  bool setup();
  void abandon();  // the ring failed: every queued message counts as failed

  struct Entry {
    std::shared_ptr<DirectSender> owner;
    std::atomic<guint64> *sent = nullptr;
    guint packets = 0;
  };
  struct Control {
    alignas(cmsghdr) char bytes[CMSG_SPACE(sizeof(guint16))];
  };
  struct Ring;  // send-batch.cpp (liburing's struct io_uring)
  std::unique_ptr<Ring> ring_;
  std::unique_ptr<guint8[]> bytes_;
  size_t bytes_used_ = 0;
  std::vector<iovec> iovs_;
  guint iovs_used_ = 0, iovs_queued_ = 0;
  std::vector<msghdr> msgs_;
  std::vector<Control> controls_;
  std::vector<sockaddr_storage> names_;
  std::vector<Entry> entries_;
};

}  // namespace whipwhep
