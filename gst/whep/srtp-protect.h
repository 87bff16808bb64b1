// SRTP (RFC 3711) protection of outgoing RTP for the direct send path
// (direct-send.h): AES_CM_128_HMAC_SHA1_80 and _32, the two profiles
// GStreamer 1.22's DTLS offers, with the master key webrtcbin negotiated.
//
// Why not libsrtp2: Debian's libsrtp2 is built on NSS, which creates a new
// PK11 context for every packet; in the fan-out profile NSS under libsrtp2
// was a quarter of all CPU. This is the sender half only, on OpenSSL's EVP
// (AES-NI, SHA extensions), with the keys derived once, and HMAC-SHA1 from
// SHA-1 states precomputed per key (EVP_MAC re-initialised per packet cost
// about 8 % of the relay's CPU in its dispatch and context copies). The
// receivers (srtpdec, browsers) are libsrtp, and a unit test decrypts our
// output with GStreamer's srtpdec.
#pragma once

#include <glib.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;

namespace whipwhep {

class SrtpProtector {
 public:
  // The bytes SRTP adds after the RTP packet, at most.
  static constexpr size_t kMaxTrailer = 10;

  SrtpProtector();
  ~SrtpProtector();
  SrtpProtector(const SrtpProtector &) = delete;
  SrtpProtector &operator=(const SrtpProtector &) = delete;

  // The bytes SRTCP adds after the compound RTCP packet, at most (E flag
  // and index, then the tag).
  static constexpr size_t kMaxRtcpTrailer = 4 + 10;
  // SRTCP's first index (see protect_rtcp).
  static constexpr guint32 kFirstRtcpIndex = 1u << 20;

  // master = 16-byte key followed by 14-byte salt; tag_len 10 (SHA1_80) or
  // 4 (SHA1_32), for RTP and for RTCP. False if the key or a tag length is
  // not one of those.
  bool init(const guint8 *master, size_t master_len, size_t tag_len) {
    return init(master, master_len, tag_len, tag_len);
  }
  bool init(const guint8 *master, size_t master_len, size_t tag_len, size_t rtcp_tag_len);
  bool ready() const { return rtp_.cipher != nullptr; }

  // Encrypts the RTP packet in place and appends the tag; `capacity` must
  // be at least len + kMaxTrailer. Returns the SRTP length, 0 if `packet`
  // is not an RTP packet.
  size_t protect(guint8 *packet, size_t len, size_t capacity) {
    return protect(packet, len, packet, capacity, -1);
  }
  // The same from `in` into `out` (no copy of the payload before it is
  // encrypted), with the payload type rewritten to `pt` unless pt < 0.
  size_t protect(const guint8 *in, size_t len, guint8 *out, size_t capacity, int pt);

  // SRTCP (RFC 3711 3.4): the compound RTCP packet `in` encrypted after its
  // first 8 bytes into `out` (may be `in`), followed by the E flag with the
  // SRTCP index and the tag; `capacity` >= len + kMaxRtcpTrailer. Returns
  // the SRTCP length, 0 if `in` is not RTCP. The index starts at
  // kFirstRtcpIndex, above any a libsrtp context for the same SSRC (srtpenc,
  // before this path took over) can have used in its first hours: the
  // receiver's replay window only takes indexes that move forward.
  size_t protect_rtcp(const guint8 *in, size_t len, guint8 *out, size_t capacity);

  // The receiving half for SRTCP only (a viewer's reports and feedback, once
  // its webrtcbin is released: direct-rtcp.h), with the *sender's* keys:
  // checks the tag and the replay window (64 indexes, RFC 3711 3.3.2),
  // decrypts into `out` (may be `in`, at least len bytes). Returns the
  // plain compound packet's length, 0 if it is rejected.
  size_t unprotect_rtcp(const guint8 *in, size_t len, guint8 *out);

 private:
  struct Stream {
    guint32 ssrc = 0;
    guint32 roc = 0;      // rollover counter
    guint16 highest = 0;  // highest sequence number sent
    bool started = false;
  };
  // The 48-bit packet index for `seq` (RFC 3711 3.3.1), updating the stream.
  guint64 packet_index(Stream &s, guint16 seq);
  Stream &stream(guint32 ssrc);

  struct HmacSha1;  // srtp-protect.cpp
  // One direction's session keys (RFC 3711 4.3): RTP's or RTCP's.
  struct SessionKeys {
    EVP_CIPHER_CTX *cipher = nullptr;  // AES-128-CTR with the session key
    std::unique_ptr<HmacSha1> mac;     // HMAC-SHA1 with the session auth key
    guint8 salt[14] = {};
    size_t tag_len = 10;
    SessionKeys();
    ~SessionKeys();
    bool derive(const guint8 *master, guint8 first_label, size_t tag);
    // AES-CM over `n` bytes with IV = salt XOR (ssrc << 64) XOR (index << 16).
    bool encrypt(guint32 ssrc, guint64 index, const guint8 *in, guint8 *out, size_t n);
  };
  SessionKeys rtp_, rtcp_;
  guint32 rtcp_index_ = kFirstRtcpIndex;
  // unprotect_rtcp's replay window: the highest index taken and a bit per
  // index below it.
  bool rtcp_seen_ = false;
  guint32 rtcp_highest_ = 0;
  guint64 rtcp_window_ = 0;
  std::vector<Stream> streams_;  // one per SSRC: a viewer has one or two
};

}  // namespace whipwhep
