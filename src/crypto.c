/* crypto.c: SHA-256, HMAC-SHA256, hex, constant-time compare, random bytes, base64, AES-256-CBC and the TC3
 * signer userdata. Every OpenSSL object lives in a userdata whose __gc frees it, so a Lua error can never leak
 * one; the only exception (the AES context) is created and freed with no Lua call in between. */
/* As for curl.h in src/http.c: the compiler finds the header, and a missing one is named with its package. */
#if defined(__has_include) && !defined(__CPPCHECK__) /* cppcheck cannot evaluate __has_include */
#if !__has_include(<openssl/evp.h>)
#error "openssl/evp.h not found: install libssl-dev (Debian, Ubuntu), openssl-dev (Alpine), openssl-devel (Fedora), or pass OPENSSL_DIR=<prefix> to luarocks (Homebrew: OPENSSL_DIR=$(brew --prefix openssl@3))"
#endif
#endif
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "core.h"

#define SHA256_LEN 32
#define STATE_MT "essbasic.crypto_state"
#define SIGNER_MT "essbasic.tc3_signer"
#define RANDOM_MAX 4096
/* 9999-12-31T23:59:59Z: keeps the credential date at exactly ten characters. */
#define TIMESTAMP_MAX 253402300799LL

/* ---------------------------------------------------------------------------------------------------------------
 * Per-lua_State crypto state: algorithms fetched once (implicit fetches on every call cost more than the hashing
 * of a small request) and contexts reused by the module-level functions. A lua_State runs one C function at a
 * time, so sharing the contexts between those functions is safe. */
typedef struct {
  EVP_MD *sha256;
  EVP_MAC *hmac;
  EVP_CIPHER *aes256cbc;
  EVP_MD_CTX *md_ctx;
  EVP_MAC_CTX *mac_ctx;
} crypto_state;

static int state_gc(lua_State *L) {
  crypto_state *st = (crypto_state *)luaL_checkudata(L, 1, STATE_MT);
  EVP_MAC_CTX_free(st->mac_ctx);
  st->mac_ctx = NULL;
  EVP_MD_CTX_free(st->md_ctx);
  st->md_ctx = NULL;
  EVP_CIPHER_free(st->aes256cbc);
  st->aes256cbc = NULL;
  EVP_MAC_free(st->hmac);
  st->hmac = NULL;
  EVP_MD_free(st->sha256);
  st->sha256 = NULL;
  return 0;
}

static crypto_state *get_state(lua_State *L) {
  return (crypto_state *)lua_touserdata(L, lua_upvalueindex(1));
}

/* A MAC context that computes HMAC-SHA256; the digest choice persists across EVP_MAC_init calls. */
static EVP_MAC_CTX *new_hmac_sha256_ctx(EVP_MAC *mac) {
  EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
  if (ctx == NULL) return NULL;
  OSSL_PARAM params[2];
  params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
  params[1] = OSSL_PARAM_construct_end();
  if (!EVP_MAC_CTX_set_params(ctx, params)) {
    EVP_MAC_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

/* ---------------------------------------------------------------------------------------------------------------
 * Small helpers */

/* A failure the caller gets as nil, why. OpenSSL's error queue is per thread and outlives the call: what a failed
 * OpenSSL call left there is cleared, so a later, unrelated reader of the queue (libcurl's TLS error messages, in
 * the same thread) does not report it as its own. */
static int push_failure(lua_State *L, const char *why) {
  ERR_clear_error();
  lua_pushnil(L);
  lua_pushstring(L, why);
  return 2;
}

/* The same for a failure that raises (the C resources involved belong to userdata, so raising leaks nothing). */
static int raise_failure(lua_State *L, const char *why) {
  ERR_clear_error();
  return luaL_error(L, "%s", why);
}

/* An integral number within [lo, hi]; Lua 5.4 floats such as 1700000000.0 count, as they do on LuaJIT. */
static long long need_integer(lua_State *L, int i, long long lo, long long hi, const char *what) {
  if (lua_type(L, i) != LUA_TNUMBER) {
    luaL_argerror(L, i, lua_pushfstring(L, "%s expected, got %s", what, luaL_typename(L, i)));
  }
  lua_Number n = lua_tonumber(L, i);
  if (!(n >= (lua_Number)lo && n <= (lua_Number)hi) || n != (lua_Number)(long long)n) {
    luaL_argerror(L, i, lua_pushfstring(L, "%s out of range or not integral", what));
  }
  return (long long)n;
}

/* Strings only: numbers are not silently turned into keys or payloads. */
static const char *need_string(lua_State *L, int i, size_t *len) {
  if (lua_type(L, i) != LUA_TSTRING) {
    luaL_argerror(L, i, lua_pushfstring(L, "string expected, got %s", luaL_typename(L, i)));
  }
  return lua_tolstring(L, i, len);
}

/* Scratch memory owned by Lua (a userdata left on the stack), so a later Lua error cannot leak it. */
static unsigned char *scratch(lua_State *L, size_t n) {
  return (unsigned char *)essbasic_newuserdata(L, n > 0 ? n : 1);
}

static void to_hex(char *dst, const unsigned char *src, size_t n) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    dst[2 * i] = digits[src[i] >> 4];
    dst[2 * i + 1] = digits[src[i] & 15];
  }
}

static void push_hex(lua_State *L, const unsigned char *src, size_t n) {
  char out[2 * SHA256_LEN];
  if (n > SHA256_LEN) luaL_error(L, "push_hex: input too long");
  to_hex(out, src, n);
  lua_pushlstring(L, out, 2 * n);
}

static int sha256_into(EVP_MD_CTX *ctx, const EVP_MD *md, const void *data, size_t len,
                       unsigned char out[SHA256_LEN]) {
  unsigned int outlen = 0;
  return EVP_DigestInit_ex2(ctx, md, NULL) && EVP_DigestUpdate(ctx, data, len) &&
         EVP_DigestFinal_ex(ctx, out, &outlen) && outlen == SHA256_LEN;
}

/* key == NULL re-initialises the context with the key it already holds (cheaper than re-keying). */
static int hmac_into(EVP_MAC_CTX *ctx, const void *key, size_t keylen, const void *data, size_t len,
                     unsigned char out[SHA256_LEN]) {
  size_t outlen = 0;
  return EVP_MAC_init(ctx, (const unsigned char *)key, keylen, NULL) &&
         EVP_MAC_update(ctx, (const unsigned char *)data, len) &&
         EVP_MAC_final(ctx, out, &outlen, SHA256_LEN) && outlen == SHA256_LEN;
}

/* ---------------------------------------------------------------------------------------------------------------
 * Hashes, HMAC, hex, comparison, randomness */

/* core.sha256(s) → 32 bytes; core.sha256_hex(s) → 64 hex digits. */
static int sha256_of_arg(lua_State *L, int hex) {
  size_t len;
  const char *s = need_string(L, 1, &len);
  crypto_state *st = get_state(L);
  unsigned char digest[SHA256_LEN];
  if (!sha256_into(st->md_ctx, st->sha256, s, len, digest)) return raise_failure(L, "sha256 failed");
  if (hex) {
    push_hex(L, digest, SHA256_LEN);
  } else {
    lua_pushlstring(L, (const char *)digest, SHA256_LEN);
  }
  return 1;
}
static int l_sha256(lua_State *L) { return sha256_of_arg(L, 0); }
static int l_sha256_hex(lua_State *L) { return sha256_of_arg(L, 1); }

/* core.sha256_file_hex(prefix, path) → the 64 hex digits of sha256(prefix .. the file's bytes), read a block at a
 * time (memory does not grow with the file: the batch command's input fingerprint), or nil and a message. */
static int l_sha256_file_hex(lua_State *L) {
  size_t plen;
  const char *prefix = need_string(L, 1, &plen);
  const char *path = luaL_checkstring(L, 2);
  crypto_state *st = get_state(L);
  unsigned char block[16384], digest[SHA256_LEN];
  unsigned int outlen = 0;
  FILE *f = fopen(path, "rb");
  if (!f) {
    int e = errno;
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", path, strerror(e));
    return 2;
  }
  int ok = EVP_DigestInit_ex(st->md_ctx, st->sha256, NULL) && EVP_DigestUpdate(st->md_ctx, prefix, plen);
  size_t n;
  while (ok && (n = fread(block, 1, sizeof block, f)) > 0) ok = EVP_DigestUpdate(st->md_ctx, block, n);
  int read_failed = ferror(f);
  fclose(f);
  if (ok) ok = EVP_DigestFinal_ex(st->md_ctx, digest, &outlen) && outlen == SHA256_LEN;
  if (!ok) return raise_failure(L, "sha256 failed");
  if (read_failed) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: a read failed", path);
    return 2;
  }
  push_hex(L, digest, SHA256_LEN);
  return 1;
}

static int l_hmac_sha256(lua_State *L) {
  size_t keylen, len;
  const char *key = need_string(L, 1, &keylen);
  const char *s = need_string(L, 2, &len);
  crypto_state *st = get_state(L);
  unsigned char mac[SHA256_LEN];
  /* An empty Lua string still has a non-NULL pointer, so an empty key re-keys rather than reuses the last one. */
  if (!hmac_into(st->mac_ctx, key, keylen, s, len, mac)) return raise_failure(L, "hmac_sha256 failed");
  lua_pushlstring(L, (const char *)mac, SHA256_LEN);
  OPENSSL_cleanse(mac, sizeof mac);
  return 1;
}

static int l_hex(lua_State *L) {
  size_t len;
  const unsigned char *s = (const unsigned char *)need_string(L, 1, &len);
  if (len > ((size_t)-1) / 2) return luaL_error(L, "hex: input too long");
  char *out = (char *)scratch(L, 2 * len);
  to_hex(out, s, len);
  lua_pushlstring(L, out, 2 * len);
  return 1;
}

static int l_ct_equal(lua_State *L) {
  size_t alen, blen;
  const char *a = need_string(L, 1, &alen);
  const char *b = need_string(L, 2, &blen);
  /* Lengths are not secret (a MAC has a fixed size); the bytes are compared without an early exit. */
  lua_pushboolean(L, alen == blen && CRYPTO_memcmp(a, b, alen) == 0);
  return 1;
}

static int l_random_bytes(lua_State *L) {
  size_t len = (size_t)need_integer(L, 1, 1, RANDOM_MAX, "byte count (1..4096)");
  unsigned char *buf = scratch(L, len);
  if (RAND_bytes(buf, (int)len) != 1) return push_failure(L, "random_bytes: the random generator failed");
  lua_pushlstring(L, (const char *)buf, len);
  OPENSSL_cleanse(buf, len);
  return 1;
}

/* ---------------------------------------------------------------------------------------------------------------
 * Base64 (RFC 4648 standard alphabet, padded, no line breaks). Hand-written rather than EVP_EncodeBlock because
 * that takes an int length and its decoder accepts whitespace and miscounts padding. */

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* 0..63 for alphabet bytes, 64 for everything else ('=' included). A constant, so that loading the module in
 * several threads at once writes nothing shared. */
static const unsigned char b64_value[256] = {
  64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
  64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
  64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 62, 64, 64, 64, 63,
  52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 64, 64, 64, 64, 64, 64,
  64,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14,
  15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 64, 64, 64, 64, 64,
  64, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
  41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 64, 64, 64, 64, 64,
  64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
  64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
  64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
  64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
  64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
  64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
  64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
  64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
};

static int l_base64_encode(lua_State *L) {
  size_t len;
  const unsigned char *in = (const unsigned char *)need_string(L, 1, &len);
  size_t groups = len / 3 + (len % 3 != 0);
  if (groups > ((size_t)-1) / 4) return luaL_error(L, "base64_encode: input too long");
  size_t outlen = groups * 4;
  char *out = (char *)scratch(L, outlen);
  char *o = out;
  size_t i = 0;
  for (; i + 3 <= len; i += 3) {
    uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
    o[0] = b64_alphabet[v >> 18];
    o[1] = b64_alphabet[(v >> 12) & 63];
    o[2] = b64_alphabet[(v >> 6) & 63];
    o[3] = b64_alphabet[v & 63];
    o += 4;
  }
  if (len - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    o[0] = b64_alphabet[v >> 18];
    o[1] = b64_alphabet[(v >> 12) & 63];
    o[2] = '=';
    o[3] = '=';
  } else if (len - i == 2) {
    uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8);
    o[0] = b64_alphabet[v >> 18];
    o[1] = b64_alphabet[(v >> 12) & 63];
    o[2] = b64_alphabet[(v >> 6) & 63];
    o[3] = '=';
  }
  lua_pushlstring(L, out, outlen);
  return 1;
}


static int l_base64_decode(lua_State *L) {
  size_t len;
  const unsigned char *in = (const unsigned char *)need_string(L, 1, &len);
  if (len % 4 != 0) return push_failure(L, "base64: length is not a multiple of 4");
  if (len == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  size_t pad = (in[len - 1] == '=') + (in[len - 1] == '=' && in[len - 2] == '=');
  size_t outlen = len / 4 * 3 - pad;
  unsigned char *out = scratch(L, outlen);
  unsigned char *o = out;
  size_t full = len - (pad ? 4 : 0); /* groups without padding */
  for (size_t i = 0; i < full; i += 4) {
    unsigned a = b64_value[in[i]], b = b64_value[in[i + 1]], c = b64_value[in[i + 2]], d = b64_value[in[i + 3]];
    if ((a | b | c | d) & 64) return push_failure(L, "base64: invalid character");
    uint32_t v = (a << 18) | (b << 12) | (c << 6) | d;
    o[0] = (unsigned char)(v >> 16);
    o[1] = (unsigned char)(v >> 8);
    o[2] = (unsigned char)v;
    o += 3;
  }
  if (pad) {
    const unsigned char *g = in + full;
    unsigned a = b64_value[g[0]], b = b64_value[g[1]];
    unsigned c = pad == 1 ? b64_value[g[2]] : 0;
    /* An '=' in the first two places of the last group, or anywhere earlier, is caught as an invalid
     * character; the leftover bits of the last symbol are ignored, as the usual decoders do. */
    if ((a | b | c) & 64) return push_failure(L, "base64: invalid character or misplaced padding");
    uint32_t v = (a << 18) | (b << 12) | (c << 6);
    o[0] = (unsigned char)(v >> 16);
    if (pad == 1) o[1] = (unsigned char)(v >> 8);
  }
  lua_pushlstring(L, (const char *)out, outlen);
  return 1;
}

/* ---------------------------------------------------------------------------------------------------------------
 * AES-256-CBC with PKCS#7 padding */

static int aes256cbc(lua_State *L, int encrypt) {
  size_t keylen, ivlen, len;
  const unsigned char *key = (const unsigned char *)need_string(L, 1, &keylen);
  const unsigned char *iv = (const unsigned char *)need_string(L, 2, &ivlen);
  const unsigned char *in = (const unsigned char *)need_string(L, 3, &len);
  crypto_state *st = get_state(L);
  if (keylen != 32) return push_failure(L, "aes-256-cbc: the key must be exactly 32 bytes");
  if (ivlen != 16) return push_failure(L, "aes-256-cbc: the IV must be exactly 16 bytes");
  if (!encrypt && (len == 0 || len % 16 != 0)) {
    return push_failure(L, "aes-256-cbc: the ciphertext length is not a positive multiple of 16");
  }
  if (len > (size_t)INT32_MAX - 32) return push_failure(L, "aes-256-cbc: input too long");
  unsigned char *out = scratch(L, len + 16);
  /* No Lua call from here until the context is freed. */
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int n1 = 0, n2 = 0, ok = ctx != NULL && EVP_CipherInit_ex2(ctx, st->aes256cbc, key, iv, encrypt, NULL);
  const char *why = "aes-256-cbc: cipher setup failed";
  if (ok) {
    ok = EVP_CipherUpdate(ctx, out, &n1, in, (int)len);
    why = "aes-256-cbc: cipher update failed";
  }
  if (ok) {
    ok = EVP_CipherFinal_ex(ctx, out + n1, &n2);
    why = encrypt ? "aes-256-cbc: cipher final failed" : "aes-256-cbc: bad padding (wrong key or damaged data)";
  }
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) {
    OPENSSL_cleanse(out, len + 16);
    return push_failure(L, why);
  }
  lua_pushlstring(L, (const char *)out, (size_t)n1 + (size_t)n2);
  OPENSSL_cleanse(out, len + 16);
  return 1;
}

static int l_aes256cbc_encrypt(lua_State *L) { return aes256cbc(L, 1); }
static int l_aes256cbc_decrypt(lua_State *L) { return aes256cbc(L, 0); }

/* ---------------------------------------------------------------------------------------------------------------
 * TC3-HMAC-SHA256 signer */

typedef struct {
  unsigned char *key; /* "TC3" .. secret key */
  size_t keylen;
  EVP_MD *sha256;         /* own reference */
  EVP_MD_CTX *md_ctx;     /* payload and canonical-request hashes */
  EVP_MAC_CTX *derive;    /* re-keyed for each derivation step */
  EVP_MAC_CTX *signing;   /* keyed with secret_signing of the cached (date, service) */
  char *buf;              /* canonical request, then string to sign; grows, reused between calls */
  size_t cap;
  char *service;          /* cached scope: service name and date */
  size_t service_len;
  char date[10];
  int cached;
  unsigned char secret_date[SHA256_LEN], secret_service[SHA256_LEN], secret_signing[SHA256_LEN];
  int closed;
} tc3_signer;

static void signer_release(tc3_signer *s) {
  if (s->key != NULL) {
    OPENSSL_clear_free(s->key, s->keylen);
    s->key = NULL;
  }
  s->keylen = 0;
  EVP_MAC_CTX_free(s->signing);
  s->signing = NULL;
  EVP_MAC_CTX_free(s->derive);
  s->derive = NULL;
  EVP_MD_CTX_free(s->md_ctx);
  s->md_ctx = NULL;
  EVP_MD_free(s->sha256);
  s->sha256 = NULL;
  free(s->buf);
  s->buf = NULL;
  s->cap = 0;
  free(s->service);
  s->service = NULL;
  s->service_len = 0;
  s->cached = 0;
  OPENSSL_cleanse(s->secret_date, sizeof s->secret_date);
  OPENSSL_cleanse(s->secret_service, sizeof s->secret_service);
  OPENSSL_cleanse(s->secret_signing, sizeof s->secret_signing);
  s->closed = 1;
}

static int signer_close(lua_State *L) {
  signer_release((tc3_signer *)luaL_checkudata(L, 1, SIGNER_MT));
  return 0;
}

static int signer_tostring(lua_State *L) {
  luaL_checkudata(L, 1, SIGNER_MT);
  lua_pushliteral(L, "essbasic.tc3_signer (secret hidden)");
  return 1;
}

static int l_tc3_signer(lua_State *L) {
  size_t keylen;
  const char *key = need_string(L, 1, &keylen);
  crypto_state *st = get_state(L);
  if (keylen == 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "tc3_signer: the secret key is empty");
    return 2;
  }
  if (keylen > ((size_t)-1) - 3) return luaL_error(L, "tc3_signer: secret key too long");
  /* The userdata and its __gc exist before any resource it owns. */
  tc3_signer *s = (tc3_signer *)essbasic_newuserdata(L, sizeof *s);
  memset(s, 0, sizeof *s);
  luaL_setmetatable(L, SIGNER_MT);
  s->key = (unsigned char *)OPENSSL_malloc(keylen + 3);
  if (s->key == NULL) return luaL_error(L, "tc3_signer: out of memory");
  memcpy(s->key, "TC3", 3);
  memcpy(s->key + 3, key, keylen);
  s->keylen = keylen + 3;
  if (!EVP_MD_up_ref(st->sha256)) return raise_failure(L, "tc3_signer: EVP_MD_up_ref failed");
  s->sha256 = st->sha256;
  s->md_ctx = EVP_MD_CTX_new();
  s->derive = new_hmac_sha256_ctx(st->hmac);
  s->signing = new_hmac_sha256_ctx(st->hmac);
  if (s->md_ctx == NULL || s->derive == NULL || s->signing == NULL) {
    return raise_failure(L, "tc3_signer: cannot create the hash contexts");
  }
  return 1;
}

/* Appending to the signer's buffer; the buffer belongs to the userdata, so raising here leaks nothing. */
static void buf_reserve(lua_State *L, tc3_signer *s, size_t used, size_t extra) {
  if (extra > ((size_t)-1) / 2 - used) luaL_error(L, "sign: request too large");
  size_t need = used + extra;
  if (need <= s->cap) return;
  size_t cap = s->cap ? s->cap : 512;
  while (cap < need) cap *= 2;
  char *p = (char *)realloc(s->buf, cap);
  if (p == NULL) luaL_error(L, "sign: out of memory");
  s->buf = p;
  s->cap = cap;
}

static size_t buf_add(lua_State *L, tc3_signer *s, size_t used, const void *data, size_t len) {
  buf_reserve(L, s, used, len);
  if (len > 0) memcpy(s->buf + used, data, len);
  return used + len;
}

#define BUF_LIT(L, s, used, lit) buf_add((L), (s), (used), (lit), sizeof(lit) - 1)

static int is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* Header names arrive lowercase and sorted; anything else would produce a signature the server rejects with a
 * confusing AuthFailure, so it is refused here as a programming error. */
static void check_header_name(lua_State *L, const char *name, size_t len, const char *prev, size_t prevlen) {
  if (len == 0) luaL_argerror(L, 6, "empty header name");
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)name[i];
    if (c <= ' ' || c >= 0x7f || c == ':' || c == ';' || (c >= 'A' && c <= 'Z')) {
      luaL_argerror(L, 6, "header names must be lowercase tokens");
    }
  }
  if (prev != NULL) {
    size_t n = len < prevlen ? len : prevlen;
    int cmp = memcmp(prev, name, n);
    if (cmp > 0 || (cmp == 0 && prevlen >= len)) luaL_argerror(L, 6, "header names must be sorted and unique");
  }
}

/* CanonicalHeaders ("name:lower(trim(value))\n" each) then "\n", then SignedHeaders ("a;b;c"). Returns the new
 * length; sh_off and sh_len locate SignedHeaders in the buffer. */
static size_t add_headers(lua_State *L, tc3_signer *s, size_t used, size_t *sh_off, size_t *sh_len) {
  size_t n = lua_rawlen(L, 6);
  if (n == 0 || n % 2 != 0) luaL_argerror(L, 6, "expected {name1, value1, name2, value2, ...}");
  const char *prev = NULL;
  size_t prevlen = 0;
  for (size_t i = 1; i <= n; i += 2) {
    size_t nlen, vlen;
    lua_rawgeti(L, 6, (int)i);
    lua_rawgeti(L, 6, (int)i + 1);
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING) {
      luaL_argerror(L, 6, "header names and values must be strings");
    }
    const char *name = lua_tolstring(L, -2, &nlen);
    const char *value = lua_tolstring(L, -1, &vlen);
    /* prev points into a string the table (argument 6) still holds. */
    check_header_name(L, name, nlen, prev, prevlen);
    prev = name;
    prevlen = nlen;
    while (vlen > 0 && is_space((unsigned char)value[0])) value++, vlen--;
    while (vlen > 0 && is_space((unsigned char)value[vlen - 1])) vlen--;
    used = buf_add(L, s, used, name, nlen);
    used = BUF_LIT(L, s, used, ":");
    size_t vstart = used;
    used = buf_add(L, s, used, value, vlen);
    for (size_t k = vstart; k < used; k++) {
      if (s->buf[k] >= 'A' && s->buf[k] <= 'Z') s->buf[k] = (char)(s->buf[k] - 'A' + 'a');
    }
    used = BUF_LIT(L, s, used, "\n");
    lua_pop(L, 2);
  }
  used = BUF_LIT(L, s, used, "\n");
  *sh_off = used;
  for (size_t i = 1; i <= n; i += 2) {
    size_t nlen;
    lua_rawgeti(L, 6, (int)i);
    const char *name = lua_tolstring(L, -1, &nlen);
    if (i > 1) used = BUF_LIT(L, s, used, ";");
    used = buf_add(L, s, used, name, nlen);
    lua_pop(L, 1);
  }
  *sh_len = used - *sh_off;
  return used;
}

/* Makes s->signing hold SecretSigning for (date, service), deriving it only when the scope changed. */
static void derive_signing_key(lua_State *L, tc3_signer *s, const char *date, const char *service,
                               size_t service_len) {
  if (s->cached && memcmp(s->date, date, sizeof s->date) == 0 && s->service_len == service_len &&
      memcmp(s->service, service, service_len) == 0) {
    return;
  }
  s->cached = 0;
  if (service_len > s->service_len || s->service == NULL) {
    char *p = (char *)realloc(s->service, service_len);
    if (p == NULL) luaL_error(L, "sign: out of memory");
    s->service = p;
  }
  if (!hmac_into(s->derive, s->key, s->keylen, date, sizeof s->date, s->secret_date) ||
      !hmac_into(s->derive, s->secret_date, SHA256_LEN, service, service_len, s->secret_service) ||
      !hmac_into(s->derive, s->secret_service, SHA256_LEN, "tc3_request", 11, s->secret_signing) ||
      !EVP_MAC_init(s->signing, s->secret_signing, SHA256_LEN, NULL)) {
    raise_failure(L, "sign: key derivation failed");
  }
  memcpy(s->service, service, service_len);
  s->service_len = service_len;
  memcpy(s->date, date, sizeof s->date);
  s->cached = 1;
}

static void set_hex_field(lua_State *L, int table, const char *name, const unsigned char *bytes) {
  push_hex(L, bytes, SHA256_LEN);
  lua_setfield(L, table, name);
}

/* "YYYY-MM-DD" of a timestamp already checked to lie in 0..TIMESTAMP_MAX. */
static void utc_date(lua_State *L, long long ts, char date[10]) {
  time_t t = (time_t)ts;
  struct tm tm;
  if (gmtime_r(&t, &tm) == NULL) luaL_error(L, "sign: cannot convert the timestamp to a date");
  int y = tm.tm_year + 1900, m = tm.tm_mon + 1, d = tm.tm_mday;
  date[0] = (char)('0' + y / 1000);
  date[1] = (char)('0' + y / 100 % 10);
  date[2] = (char)('0' + y / 10 % 10);
  date[3] = (char)('0' + y % 10);
  date[4] = '-';
  date[5] = (char)('0' + m / 10);
  date[6] = (char)('0' + m % 10);
  date[7] = '-';
  date[8] = (char)('0' + d / 10);
  date[9] = (char)('0' + d % 10);
}

static const char *need_nonempty(lua_State *L, int i, size_t *len) {
  const char *s = need_string(L, i, len);
  if (*len == 0) luaL_argerror(L, i, "must not be empty");
  return s;
}

/* signer:sign(timestamp, service, method, canonical_query, headers, payload [, trace])
 *   → signature_hex, signed_headers, credential_scope [, trace table] */
static int signer_sign(lua_State *L) {
  tc3_signer *s = (tc3_signer *)luaL_checkudata(L, 1, SIGNER_MT);
  if (s->closed) return luaL_error(L, "sign: the signer is closed");
  long long ts = need_integer(L, 2, 0, TIMESTAMP_MAX, "Unix timestamp (1970..9999)");
  size_t service_len, method_len, query_len, payload_len;
  const char *service = need_nonempty(L, 3, &service_len);
  const char *method = need_nonempty(L, 4, &method_len);
  const char *query = need_string(L, 5, &query_len);
  luaL_checktype(L, 6, LUA_TTABLE);
  const char *payload = need_string(L, 7, &payload_len);
  int trace = lua_toboolean(L, 8);

  unsigned char digest[SHA256_LEN], signature[SHA256_LEN];
  char payload_hex[2 * SHA256_LEN], cr_hex[2 * SHA256_LEN], date[10], ts_text[24];
  if (!sha256_into(s->md_ctx, s->sha256, payload, payload_len, digest)) return raise_failure(L, "sign: sha256 failed");
  to_hex(payload_hex, digest, SHA256_LEN);

  /* CanonicalRequest = method \n / \n query \n CanonicalHeaders \n SignedHeaders \n hex(sha256(payload)) */
  size_t used = buf_add(L, s, 0, method, method_len), sh_off, sh_len;
  used = BUF_LIT(L, s, used, "\n/\n");
  used = buf_add(L, s, used, query, query_len);
  used = BUF_LIT(L, s, used, "\n");
  used = add_headers(L, s, used, &sh_off, &sh_len);
  used = BUF_LIT(L, s, used, "\n");
  used = buf_add(L, s, used, payload_hex, sizeof payload_hex);
  size_t cr_len = used;
  if (!sha256_into(s->md_ctx, s->sha256, s->buf, cr_len, digest)) return raise_failure(L, "sign: sha256 failed");
  to_hex(cr_hex, digest, SHA256_LEN);

  /* StringToSign = TC3-HMAC-SHA256 \n timestamp \n date/service/tc3_request \n hex(sha256(CanonicalRequest)) */
  utc_date(L, ts, date);
  int ts_len = snprintf(ts_text, sizeof ts_text, "%lld", ts);
  used = BUF_LIT(L, s, used, "TC3-HMAC-SHA256\n");
  used = buf_add(L, s, used, ts_text, (size_t)ts_len);
  used = BUF_LIT(L, s, used, "\n");
  size_t scope_off = used;
  used = buf_add(L, s, used, date, sizeof date);
  used = BUF_LIT(L, s, used, "/");
  used = buf_add(L, s, used, service, service_len);
  used = BUF_LIT(L, s, used, "/tc3_request");
  size_t scope_len = used - scope_off;
  used = BUF_LIT(L, s, used, "\n");
  used = buf_add(L, s, used, cr_hex, sizeof cr_hex);

  derive_signing_key(L, s, date, service, service_len);
  if (!hmac_into(s->signing, NULL, 0, s->buf + cr_len, used - cr_len, signature)) {
    return raise_failure(L, "sign: hmac failed");
  }
  push_hex(L, signature, SHA256_LEN);
  OPENSSL_cleanse(signature, sizeof signature);
  lua_pushlstring(L, s->buf + sh_off, sh_len);
  lua_pushlstring(L, s->buf + scope_off, scope_len);
  if (!trace) return 3;

  lua_createtable(L, 0, 7);
  int t = lua_gettop(L);
  lua_pushlstring(L, payload_hex, sizeof payload_hex);
  lua_setfield(L, t, "hashed_request_payload");
  lua_pushlstring(L, s->buf, cr_len);
  lua_setfield(L, t, "canonical_request");
  lua_pushlstring(L, cr_hex, sizeof cr_hex);
  lua_setfield(L, t, "hashed_canonical_request");
  lua_pushlstring(L, s->buf + cr_len, used - cr_len);
  lua_setfield(L, t, "string_to_sign");
  set_hex_field(L, t, "secret_date_hex", s->secret_date);
  set_hex_field(L, t, "secret_service_hex", s->secret_service);
  set_hex_field(L, t, "secret_signing_hex", s->secret_signing);
  return 4;
}

/* ---------------------------------------------------------------------------------------------------------------
 * Registration */

static const luaL_Reg crypto_funcs[] = {
  {"sha256", l_sha256},
  {"sha256_hex", l_sha256_hex},
  {"sha256_file_hex", l_sha256_file_hex},
  {"hmac_sha256", l_hmac_sha256},
  {"hex", l_hex},
  {"ct_equal", l_ct_equal},
  {"random_bytes", l_random_bytes},
  {"base64_encode", l_base64_encode},
  {"base64_decode", l_base64_decode},
  {"aes256cbc_encrypt", l_aes256cbc_encrypt},
  {"aes256cbc_decrypt", l_aes256cbc_decrypt},
  {"tc3_signer", l_tc3_signer},
  {NULL, NULL},
};

static const luaL_Reg signer_methods[] = {
  {"sign", signer_sign},
  {"close", signer_close},
  {NULL, NULL},
};

void essbasic_open_crypto(lua_State *L) {
  essbasic_new_class(L, SIGNER_MT, signer_methods, signer_close, signer_tostring);

  crypto_state *st = (crypto_state *)essbasic_newuserdata(L, sizeof *st);
  memset(st, 0, sizeof *st);
  if (luaL_newmetatable(L, STATE_MT)) {
    lua_pushcfunction(L, state_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  st->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
  st->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  st->aes256cbc = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
  st->md_ctx = EVP_MD_CTX_new();
  st->mac_ctx = st->hmac != NULL ? new_hmac_sha256_ctx(st->hmac) : NULL;
  if (st->sha256 == NULL || st->hmac == NULL || st->aes256cbc == NULL || st->md_ctx == NULL || st->mac_ctx == NULL) {
    raise_failure(L, "essbasic.core: OpenSSL could not provide SHA-256, HMAC or AES-256-CBC");
  }
  /* The state is the upvalue of every function; the module table is below it. */
  luaL_setfuncs(L, crypto_funcs, 1);
}
