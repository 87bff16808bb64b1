#include "srtp-protect.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <cstring>

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

SrtpProtector::~SrtpProtector() {
  EVP_CIPHER_CTX_free(cipher_);
  EVP_MAC_CTX_free(mac_);
}

bool SrtpProtector::init(const guint8 *master, size_t master_len, size_t tag_len) {
  if (master_len != 30 || (tag_len != 10 && tag_len != 4)) return false;
  const guint8 *mkey = master, *msalt = master + 16;
  guint8 session_key[16], auth_key[20];
  if (!derive(mkey, msalt, 0x00, session_key, sizeof session_key) ||
      !derive(mkey, msalt, 0x01, auth_key, sizeof auth_key) ||
      !derive(mkey, msalt, 0x02, salt_, sizeof salt_))
    return false;
  EVP_CIPHER_CTX *cipher = EVP_CIPHER_CTX_new();
  EVP_MAC *hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  EVP_MAC_CTX *mac = hmac ? EVP_MAC_CTX_new(hmac) : nullptr;
  EVP_MAC_free(hmac);  // the context keeps its own reference
  char digest[] = "SHA1";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  const bool ok =
      cipher && mac &&
      EVP_EncryptInit_ex(cipher, EVP_aes_128_ctr(), nullptr, session_key, nullptr) == 1 &&
      EVP_MAC_init(mac, auth_key, sizeof auth_key, params) == 1;
  OPENSSL_cleanse(session_key, sizeof session_key);
  OPENSSL_cleanse(auth_key, sizeof auth_key);
  if (!ok) {
    EVP_CIPHER_CTX_free(cipher);
    EVP_MAC_CTX_free(mac);
    return false;
  }
  EVP_CIPHER_CTX_free(cipher_);
  EVP_MAC_CTX_free(mac_);
  cipher_ = cipher;
  mac_ = mac;
  tag_len_ = tag_len;
  streams_.clear();
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
  if (!ready() || hdr == 0 || capacity < len + tag_len_) return 0;
  if (p != in) memcpy(p, in, hdr);
  if (pt >= 0) p[1] = guint8((p[1] & 0x80) | (pt & 0x7f));
  const guint32 ssrc = (guint32(p[8]) << 24) | (guint32(p[9]) << 16) | (guint32(p[10]) << 8) | p[11];
  const guint16 seq = guint16((p[2] << 8) | p[3]);
  Stream &s = stream(ssrc);
  const guint64 index = packet_index(s, seq);
  const guint32 roc = guint32(index >> 16);

  // IV = (salt << 16) XOR (SSRC << 64) XOR (index << 16), RFC 3711 4.1.1.
  guint8 iv[16] = {};
  memcpy(iv, salt_, 14);
  for (int i = 0; i < 4; i++) iv[4 + i] ^= guint8(ssrc >> (24 - 8 * i));
  for (int i = 0; i < 6; i++) iv[8 + i] ^= guint8(index >> (40 - 8 * i));
  int out = 0;
  if (EVP_EncryptInit_ex(cipher_, nullptr, nullptr, nullptr, iv) != 1 ||
      EVP_EncryptUpdate(cipher_, p + hdr, &out, in + hdr, int(len - hdr)) != 1)
    return 0;

  // Tag = HMAC-SHA1(auth key, packet || ROC), truncated (RFC 3711 4.2).
  const guint8 roc_be[4] = {guint8(roc >> 24), guint8(roc >> 16), guint8(roc >> 8), guint8(roc)};
  guint8 tag[20];
  size_t tag_size = 0;
  if (EVP_MAC_init(mac_, nullptr, 0, nullptr) != 1 || EVP_MAC_update(mac_, p, len) != 1 ||
      EVP_MAC_update(mac_, roc_be, 4) != 1 || EVP_MAC_final(mac_, tag, &tag_size, sizeof tag) != 1)
    return 0;
  memcpy(p + len, tag, tag_len_);
  return len + tag_len_;
}

}  // namespace whipwhep
