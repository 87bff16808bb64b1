#include "srtp-protect.h"

// SHA1_Init/Update/Final: deprecated in OpenSSL 3 for general use, kept for
// exactly this (a hash state that can be copied as a plain struct).
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <cstring>

#include "byte-order.h"

namespace whipwhep {

namespace {

// RFC 3711 4.3.1 with a key derivation rate of 0: the AES-CM keystream of
// the master key at IV = (master salt XOR label << 48) << 16.
bool derive(const guint8 *key, const guint8 *salt, guint8 label, guint8 *out, size_t n) {
  guint8 iv[16] = {};
  memcpy(iv, salt, 14);
  iv[7] ^= label;
  std::vector<guint8> zeros(n, 0);
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  int len = 0;
  bool ok = c && EVP_EncryptInit_ex(c, EVP_aes_128_ctr(), nullptr, key, iv) == 1 &&
            EVP_EncryptUpdate(c, out, &len, zeros.data(), int(n)) == 1 && size_t(len) == n;
  EVP_CIPHER_CTX_free(c);
  return ok;
}

size_t rtp_header_length(const guint8 *p, size_t len) {
  if (len < 12 || (p[0] & 0xc0) != 0x80) return 0;
  size_t hdr = 12 + 4 * size_t(p[0] & 0x0f);
  if (p[0] & 0x10) {
    if (hdr + 4 > len) return 0;
    hdr += 4 + 4 * ((size_t(p[hdr + 2]) << 8) | p[hdr + 3]);
  }
  return hdr <= len ? hdr : 0;
}

}  // namespace

// HMAC (RFC 2104) with the key's inner and outer pad blocks hashed once:
// each tag then starts from a copy of those two states.
struct SrtpProtector::HmacSha1 {
  SHA_CTX inner, outer;

  explicit HmacSha1(const guint8 key[20]) {
    absorb_pad(&inner, key, 0x36);
    absorb_pad(&outer, key, 0x5c);
  }
  ~HmacSha1() { OPENSSL_cleanse(this, sizeof *this); }

  // A SHA-1 state that has hashed the key XOR `fill`, padded to one block.
  static void absorb_pad(SHA_CTX *c, const guint8 key[20], guint8 fill) {
    guint8 pad[SHA_CBLOCK];
    memset(pad, fill, sizeof pad);
    for (int i = 0; i < 20; i++) pad[i] ^= key[i];
    SHA1_Init(c);
    SHA1_Update(c, pad, sizeof pad);
    OPENSSL_cleanse(pad, sizeof pad);
  }

  void tag(const guint8 *a, size_t a_len, const guint8 *b, size_t b_len,
           guint8 out[SHA_DIGEST_LENGTH]) const {
    SHA_CTX c = inner;
    guint8 inner_hash[SHA_DIGEST_LENGTH];
    SHA1_Update(&c, a, a_len);
    SHA1_Update(&c, b, b_len);
    SHA1_Final(inner_hash, &c);
    c = outer;
    SHA1_Update(&c, inner_hash, sizeof inner_hash);
    SHA1_Final(out, &c);
  }
};

SrtpProtector::SessionKeys::SessionKeys() = default;
SrtpProtector::SessionKeys::~SessionKeys() { EVP_CIPHER_CTX_free(cipher); }

// RTP's session keys are labels 0, 1, 2; RTCP's 3, 4, 5 (RFC 3711 4.3.2).
bool SrtpProtector::SessionKeys::derive(const guint8 *master, guint8 first_label, size_t tag) {
  const guint8 *mkey = master, *msalt = master + 16;
  guint8 session_key[16], auth_key[20];
  bool ok = whipwhep::derive(mkey, msalt, first_label, session_key, sizeof session_key) &&
            whipwhep::derive(mkey, msalt, guint8(first_label + 1), auth_key, sizeof auth_key) &&
            whipwhep::derive(mkey, msalt, guint8(first_label + 2), salt, sizeof salt);
  EVP_CIPHER_CTX *c = ok ? EVP_CIPHER_CTX_new() : nullptr;
  ok = c && EVP_EncryptInit_ex(c, EVP_aes_128_ctr(), nullptr, session_key, nullptr) == 1;
  OPENSSL_cleanse(session_key, sizeof session_key);
  if (ok) {
    EVP_CIPHER_CTX_free(cipher);
    cipher = c;
    mac = std::make_unique<HmacSha1>(auth_key);
    tag_len = tag;
  } else {
    EVP_CIPHER_CTX_free(c);
  }
  OPENSSL_cleanse(auth_key, sizeof auth_key);
  return ok;
}

bool SrtpProtector::SessionKeys::encrypt(guint32 ssrc, guint64 index, const guint8 *in,
                                         guint8 *out, size_t n) {
  // IV = (salt << 16) XOR (SSRC << 64) XOR (index << 16), RFC 3711 4.1.1.
  guint8 iv[16] = {};
  memcpy(iv, salt, 14);
  for (int i = 0; i < 4; i++) iv[4 + i] ^= guint8(ssrc >> (24 - 8 * i));
  for (int i = 0; i < 6; i++) iv[8 + i] ^= guint8(index >> (40 - 8 * i));
  int done = 0;
  return EVP_EncryptInit_ex(cipher, nullptr, nullptr, nullptr, iv) == 1 &&
         EVP_EncryptUpdate(cipher, out, &done, in, int(n)) == 1;
}

SrtpProtector::SrtpProtector() = default;
SrtpProtector::~SrtpProtector() = default;

bool SrtpProtector::init(const guint8 *master, size_t master_len, size_t tag_len,
                         size_t rtcp_tag_len) {
  auto tag_ok = [](size_t t) { return t == 10 || t == 4; };
  if (master_len != 30 || !tag_ok(tag_len) || !tag_ok(rtcp_tag_len)) return false;
  if (!rtp_.derive(master, 0x00, tag_len) || !rtcp_.derive(master, 0x03, rtcp_tag_len))
    return false;
  streams_.clear();
  rtcp_index_ = kFirstRtcpIndex;
  rtcp_seen_ = false;
  rtcp_highest_ = 0;
  rtcp_window_ = 0;
  return true;
}

SrtpProtector::Stream &SrtpProtector::stream(guint32 ssrc) {
  for (auto &s : streams_)
    if (s.ssrc == ssrc) return s;
  streams_.emplace_back();
  streams_.back().ssrc = ssrc;
  return streams_.back();
}

guint64 SrtpProtector::packet_index(Stream &s, guint16 seq) {
  if (!s.started) {
    // Like the receiver's libsrtp: the first packet seen has ROC 0.
    s.started = true;
    s.highest = seq;
    return seq;
  }
  gint64 v = s.roc;
  if (s.highest < 32768) {
    if (int(seq) - int(s.highest) > 32768) v = gint64(s.roc) - 1;
  } else if (int(s.highest) - 32768 > int(seq)) {
    v = gint64(s.roc) + 1;
  }
  if (v < 0) v = 0;  // older than the first packet: cannot be sent under ROC -1
  if (v > s.roc || (v == s.roc && seq > s.highest)) {
    s.roc = guint32(v);
    s.highest = seq;
  }
  return (guint64(v) << 16) | seq;
}

size_t SrtpProtector::protect(const guint8 *in, size_t len, guint8 *p, size_t capacity, int pt) {
  const size_t hdr = rtp_header_length(in, len);
  if (!ready() || hdr == 0 || capacity < len + rtp_.tag_len) return 0;
  if (p != in) memcpy(p, in, hdr);
  if (pt >= 0) p[1] = guint8((p[1] & 0x80) | (pt & 0x7f));
  const guint32 ssrc = read_be32(p + 8);
  const guint16 seq = guint16((p[2] << 8) | p[3]);
  Stream &s = stream(ssrc);
  const guint64 index = packet_index(s, seq);
  const guint32 roc = guint32(index >> 16);

  if (!rtp_.encrypt(ssrc, index, in + hdr, p + hdr, len - hdr)) return 0;

  // Tag = HMAC-SHA1(auth key, packet || ROC), truncated (RFC 3711 4.2).
  guint8 roc_be[4];
  write_be32(roc_be, roc);
  guint8 tag[SHA_DIGEST_LENGTH];
  rtp_.mac->tag(p, len, roc_be, sizeof roc_be, tag);
  memcpy(p + len, tag, rtp_.tag_len);
  return len + rtp_.tag_len;
}

size_t SrtpProtector::protect_rtcp(const guint8 *in, size_t len, guint8 *out, size_t capacity) {
  // A compound packet starts with an SR or RR (RFC 3550 6.1), type 200/201.
  if (!ready() || len < 8 || (in[0] & 0xc0) != 0x80 || (in[1] != 200 && in[1] != 201) ||
      capacity < len + 4 + rtcp_.tag_len)
    return 0;
  if (out != in) memcpy(out, in, 8);
  const guint32 ssrc = read_be32(in + 4);
  const guint32 index = rtcp_index_;
  rtcp_index_ = (rtcp_index_ + 1) & 0x7fffffff;
  if (!rtcp_.encrypt(ssrc, index, in + 8, out + 8, len - 8)) return 0;
  // E flag (encrypted) and the 31-bit index, then the tag over the packet
  // and both (RFC 3711 3.4).
  guint8 *trailer = out + len;
  write_be32(trailer, 0x80000000u | index);
  guint8 tag[SHA_DIGEST_LENGTH];
  rtcp_.mac->tag(out, len + 4, nullptr, 0, tag);
  memcpy(trailer + 4, tag, rtcp_.tag_len);
  return len + 4 + rtcp_.tag_len;
}

size_t SrtpProtector::unprotect_rtcp(const guint8 *in, size_t len, guint8 *out) {
  const size_t tag_len = rtcp_.tag_len;
  if (!ready() || len < 8 + 4 + tag_len || (in[0] & 0xc0) != 0x80) return 0;
  const size_t authenticated = len - tag_len;  // the packet, E flag and index
  guint8 tag[SHA_DIGEST_LENGTH];
  rtcp_.mac->tag(in, authenticated, nullptr, 0, tag);
  if (CRYPTO_memcmp(tag, in + authenticated, tag_len) != 0) return 0;
  const guint32 e_index = read_be32(in + authenticated - 4);
  const guint32 index = e_index & 0x7fffffff;
  if (rtcp_seen_ && index <= rtcp_highest_) {
    const guint32 behind = rtcp_highest_ - index;
    if (behind >= 64 || (rtcp_window_ & (guint64(1) << behind))) return 0;  // replayed or too old
  }
  const size_t plain = authenticated - 4;
  if (out != in) memcpy(out, in, 8);
  if (e_index & 0x80000000u) {
    if (!rtcp_.encrypt(read_be32(in + 4), index, in + 8, out + 8, plain - 8)) return 0;
  } else if (out != in) {
    memcpy(out + 8, in + 8, plain - 8);
  }
  if (!rtcp_seen_ || index > rtcp_highest_) {
    const guint32 ahead = rtcp_seen_ ? index - rtcp_highest_ : 64;
    rtcp_window_ = ahead >= 64 ? 1 : (rtcp_window_ << ahead) | 1;
    rtcp_highest_ = index;
    rtcp_seen_ = true;
  } else {
    rtcp_window_ |= guint64(1) << (rtcp_highest_ - index);
  }
  return plain;
}

}  // namespace whipwhep
