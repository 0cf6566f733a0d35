/*
 * Whole-array kernels for ttsync.identity, over the buffers of an Arrow string array.
 *
 * Why: after the Arrow/RE2 rules, two per-row steps dominated the preparer's CPU time and have no
 * cheap Arrow equivalent:
 *   - SHA-256: DuckDB's sha256() is software SHA (~320 ns/row here) and a Python hashlib loop costs
 *     ~450 ns/row while holding the GIL. OpenSSL's SHA256_* use the CPU's SHA extensions where
 *     present; in a C loop without the GIL this is ~80-120 ns/row and runs in parallel in the
 *     preparer's worker threads.
 *   - Keeping only the ASCII digits of a phone string and checking its shape: RE2's \D+ replace costs
 *     ~360 ns/row (seven literal replaces ~250 ns/row) and the shape regex ~75 ns/row; one byte loop
 *     does both in a few ns.
 *   - Matching kinds.EMAIL_FAST_RE and refusing special-use TLDs: ~120 ns/row in RE2 and six
 *     ends_with passes; a hand-written matcher of the same language costs ~10 ns
 *     (tests/test_identity_kernels.py compares it with RE2 on generated near-valid addresses).
 *   - Raw emails: trimming, lowercasing, that check and SHA-256 are one pass (email_sha256_into), and
 *     every digest goes straight into one caller-owned buffer (the *_into kernels): the intermediate
 *     string arrays and the concatenation of pieces cost more than the hashing (first touch of fresh pages).
 *
 * Optional: if this module cannot be built (no compiler or OpenSSL headers), ttsync.identity.kernels
 * reports it unavailable and the callers use DuckDB / Arrow with identical results.
 */
#define PY_SSIZE_T_CLEAN
/* SHA256_Init/Update/Final (deprecated by OpenSSL 3, still shipped): the fastest path, no EVP lookup. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <Python.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <string.h>

static const char HEX_DIGITS[] = "0123456789abcdef";

/* Parse (offsets, data, start, n); check that offsets[start .. start+n] exist. */
static int parse_array(PyObject *args, Py_buffer *offsets, Py_buffer *data, Py_ssize_t *start, Py_ssize_t *n) {
    if (!PyArg_ParseTuple(args, "y*y*nn", offsets, data, start, n)) {
        return -1;
    }
    if (*start < 0 || *n < 0 || *n > (INT32_MAX / 64) - 1 ||
        (*start + *n + 1) > offsets->len / (Py_ssize_t)sizeof(int32_t)) {
        PyErr_SetString(PyExc_ValueError, "offsets do not cover the requested values");
        PyBuffer_Release(offsets);
        PyBuffer_Release(data);
        return -1;
    }
    return 0;
}

/* sha256_hex(offsets, data, start, n) -> (hex, hex_offsets, keys)
 *
 * offsets: the int32 offsets buffer of an Arrow string array; data: its data buffer; start: the
 * array's offset; n: its length. Returns the hex digests concatenated (64 bytes each), the int32
 * offsets of a string array over them, and the first 8 digest bytes of each value as a uint64 (the
 * duplicate-counting key).
 */
static PyObject *sha256_hex(PyObject *self, PyObject *args) {
    Py_buffer offsets, data;
    Py_ssize_t start, n;
    (void)self;
    if (parse_array(args, &offsets, &data, &start, &n) < 0) {
        return NULL;
    }
    PyObject *hex = PyBytes_FromStringAndSize(NULL, 64 * n);
    PyObject *hex_offsets = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)sizeof(int32_t) * (n + 1));
    PyObject *keys = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)sizeof(uint64_t) * n);
    PyObject *result = NULL;
    if (hex == NULL || hex_offsets == NULL || keys == NULL) {
        goto done;
    }
    const int32_t *offs = (const int32_t *)offsets.buf + start;
    const unsigned char *bytes = (const unsigned char *)data.buf;
    const Py_ssize_t data_len = data.len;
    char *out = PyBytes_AS_STRING(hex);
    int32_t *out_offs = (int32_t *)PyBytes_AS_STRING(hex_offsets);
    unsigned char *out_keys = (unsigned char *)PyBytes_AS_STRING(keys);
    int bad = 0;
    Py_BEGIN_ALLOW_THREADS
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256_CTX ctx;
    for (Py_ssize_t i = 0; i < n; i++) {
        const int32_t lo = offs[i], hi = offs[i + 1];
        if (lo < 0 || hi < lo || (Py_ssize_t)hi > data_len) {
            bad = 1;
            break;
        }
        SHA256_Init(&ctx);
        SHA256_Update(&ctx, bytes + lo, (size_t)(hi - lo));
        SHA256_Final(md, &ctx);
        char *w = out + 64 * i;
        for (int k = 0; k < SHA256_DIGEST_LENGTH; k++) {
            w[2 * k] = HEX_DIGITS[md[k] >> 4];
            w[2 * k + 1] = HEX_DIGITS[md[k] & 15];
        }
        out_offs[i] = (int32_t)(64 * i);
        memcpy(out_keys + 8 * i, md, 8);
    }
    out_offs[n] = (int32_t)(64 * n);
    Py_END_ALLOW_THREADS
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "invalid string offsets");
        goto done;
    }
    result = PyTuple_Pack(3, hex, hex_offsets, keys);
done:
    Py_XDECREF(hex);
    Py_XDECREF(hex_offsets);
    Py_XDECREF(keys);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&data);
    return result;
}

/* phone_scan(offsets, data, start, n) -> (digits, digit_offsets, flags)
 *
 * Keeps the bytes '0'-'9' of each string (other bytes, including UTF-8 sequences, are dropped): the
 * data and int32 offsets of a string array (the data buffer may be longer than used). flags, one
 * byte per string: bit 0 set if it matches phone_fast.SHAPE_RE, ^[ ()./\-]*\+?[0-9 ()./\-]*$ (digits and
 * that punctuation, with at most one '+', before the first digit); bit 1 set if it contains a '+'.
 */
static PyObject *phone_scan(PyObject *self, PyObject *args) {
    Py_buffer offsets, data;
    Py_ssize_t start, n;
    (void)self;
    if (parse_array(args, &offsets, &data, &start, &n) < 0) {
        return NULL;
    }
    const int32_t *offs = (const int32_t *)offsets.buf + start;
    PyObject *result = NULL, *digits = NULL, *digit_offsets = NULL, *flags = NULL;
    const int32_t first = offs[0], last = offs[n];
    if (first < 0 || last < first || (Py_ssize_t)last > data.len) {
        PyErr_SetString(PyExc_ValueError, "invalid string offsets");
        goto done;
    }
    digits = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(last - first));
    digit_offsets = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)sizeof(int32_t) * (n + 1));
    flags = PyBytes_FromStringAndSize(NULL, n);
    if (digits == NULL || digit_offsets == NULL || flags == NULL) {
        goto done;
    }
    const unsigned char *bytes = (const unsigned char *)data.buf;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(digits);
    int32_t *out_offs = (int32_t *)PyBytes_AS_STRING(digit_offsets);
    unsigned char *out_flags = (unsigned char *)PyBytes_AS_STRING(flags);
    int bad = 0;
    Py_BEGIN_ALLOW_THREADS
    int32_t written = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        const int32_t lo = offs[i], hi = offs[i + 1];
        if (lo < first || hi < lo || hi > last) {
            bad = 1;
            break;
        }
        out_offs[i] = written;
        int shape = 1, digit_seen = 0, plus_seen = 0;
        for (int32_t j = lo; j < hi; j++) {
            const unsigned char c = bytes[j];
            const int is_digit = (c >= '0' && c <= '9');
            out[written] = c;
            written += is_digit; /* branch-free: keep the byte only if it is a digit */
            if (is_digit) {
                digit_seen = 1;
            } else if (c == '+') {
                shape &= !plus_seen && !digit_seen;
                plus_seen = 1;
            } else if (c != ' ' && c != '(' && c != ')' && c != '.' && c != '/' && c != '-') {
                shape = 0;
            }
        }
        out_flags[i] = (unsigned char)(shape | (plus_seen << 1));
    }
    out_offs[n] = written;
    Py_END_ALLOW_THREADS
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "invalid string offsets");
        goto done;
    }
    result = PyTuple_Pack(3, digits, digit_offsets, flags);
done:
    Py_XDECREF(digits);
    Py_XDECREF(digit_offsets);
    Py_XDECREF(flags);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&data);
    return result;
}

/* EMAIL_FAST_RE's local part characters (kinds._ATEXT): RFC 5322 atext, lowercase letters only. */
/* Byte classes, filled once at import (init_tables): a table lookup per byte instead of a strchr. */
enum { CLASS_ATEXT = 1, CLASS_LDH = 2 };
static unsigned char BYTE_CLASS[256];

static int is_atext(unsigned char c) { return BYTE_CLASS[c] & CLASS_ATEXT; }

static int is_ldh(unsigned char c) { return BYTE_CLASS[c] & CLASS_LDH; }

/* Lowercase hex of every byte value, two characters each: one 2-byte copy per digest byte. */
static char HEX_PAIRS[512];

static void init_tables(void) {
    for (int c = 0; c < 256; c++) {
        const int ldh = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        const int atext = ldh || (c != 0 && strchr("!#$%&'*+/=?^_`{|}~-", c) != NULL);
        BYTE_CLASS[c] = (unsigned char)((atext ? CLASS_ATEXT : 0) | (ldh ? CLASS_LDH : 0));
        HEX_PAIRS[2 * c] = HEX_DIGITS[c >> 4];
        HEX_PAIRS[2 * c + 1] = HEX_DIGITS[c & 15];
    }
}

/* Whether s[0:len] matches kinds.EMAIL_FAST_RE, i.e.
 *   ^atext+(?:\.atext+)*@(?:[a-z0-9]+(?:-[a-z0-9]+)*\.)+[a-z]+$
 * a dot-atom local part, then two or more dot-separated labels: all but the last are letters and
 * digits with single inner hyphens, the last (the TLD) is letters only. */
static int email_fast_match(const unsigned char *s, int32_t len, const unsigned char *refused, Py_ssize_t refused_len) {
    int32_t i = 0;
    /* Local part: runs of atext separated by single dots. */
    for (;;) {
        const int32_t run = i;
        while (i < len && is_atext(s[i])) i++;
        if (i == run) return 0; /* empty run: leading dot, "..", or nothing before "@" */
        if (i < len && s[i] == '.') {
            i++;
            continue;
        }
        break;
    }
    if (i >= len || s[i] != '@') return 0;
    i++;
    /* Domain: labels; each is [a-z0-9]+(-[a-z0-9]+)* and ends at a dot, except the last. */
    int labels = 0;
    for (;;) {
        const int32_t label = i;
        int letters_only = 1;
        for (;;) {
            const int32_t run = i;
            while (i < len && is_ldh(s[i])) {
                letters_only &= (s[i] >= 'a' && s[i] <= 'z');
                i++;
            }
            if (i == run) return 0; /* empty label, or a hyphen at its start/end or doubled */
            if (i < len && s[i] == '-') {
                letters_only = 0;
                i++;
                continue;
            }
            break;
        }
        labels++;
        if (i == len) {
            /* The last label: the TLD, letters only, after at least one dotted label, and not one
             * of the refused (special-use) TLDs, listed in `refused` as ".tld1.tld2." */
            if (labels < 2 || !letters_only) return 0;
            const int32_t tld_len = i - label;
            for (Py_ssize_t k = 0; k + tld_len + 1 < refused_len; k++) {
                if (refused[k] == '.' && refused[k + tld_len + 1] == '.' &&
                    memcmp(refused + k + 1, s + label, (size_t)tld_len) == 0) {
                    return 0;
                }
            }
            return 1;
        }
        if (s[i] != '.') return 0;
        i++;
    }
}

/* email_fast(offsets, data, start, n, max_length, refused_tlds) -> bytes: 1 per value that matches
 * EMAIL_FAST_RE, has at most max_length bytes and whose TLD is not in refused_tlds (".a.b."), else 0. */
static PyObject *email_fast(PyObject *self, PyObject *args) {
    Py_buffer offsets, data, refused;
    Py_ssize_t start, n, max_length;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*nnny*", &offsets, &data, &start, &n, &max_length, &refused)) {
        return NULL;
    }
    const unsigned char *refused_tlds = (const unsigned char *)refused.buf;
    const Py_ssize_t refused_len = refused.len;
    PyObject *result = NULL;
    if (start < 0 || n < 0 || (start + n + 1) > offsets.len / (Py_ssize_t)sizeof(int32_t)) {
        PyErr_SetString(PyExc_ValueError, "offsets do not cover the requested values");
        goto done;
    }
    PyObject *flags = PyBytes_FromStringAndSize(NULL, n);
    if (flags == NULL) {
        goto done;
    }
    const int32_t *offs = (const int32_t *)offsets.buf + start;
    const unsigned char *bytes = (const unsigned char *)data.buf;
    const Py_ssize_t data_len = data.len;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(flags);
    int bad = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        const int32_t lo = offs[i], hi = offs[i + 1];
        if (lo < 0 || hi < lo || (Py_ssize_t)hi > data_len) {
            bad = 1;
            break;
        }
        out[i] = (unsigned char)((Py_ssize_t)(hi - lo) <= max_length &&
                                 email_fast_match(bytes + lo, hi - lo, refused_tlds, refused_len));
    }
    Py_END_ALLOW_THREADS
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "invalid string offsets");
        Py_DECREF(flags);
        goto done;
    }
    result = flags;
done:
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&data);
    PyBuffer_Release(&refused);
    return result;
}

/* Parse the output arguments of the *_into kernels: `out_hex` and `out_keys` must hold `pos + n` digests. */
static int check_outputs(const Py_buffer *out_hex, const Py_buffer *out_keys, Py_ssize_t pos, Py_ssize_t n) {
    if (pos < 0 || n < 0 || pos > (INT32_MAX / 64) - 1 - n || out_hex->len < 64 * (pos + n) ||
        out_keys->len < (Py_ssize_t)sizeof(uint64_t) * (pos + n)) {
        PyErr_SetString(PyExc_ValueError, "the output buffers cannot hold the digests");
        return -1;
    }
    return 0;
}

/* One SHA-256: lowercase hex at out_hex + 64 * k, the first 8 digest bytes at out_keys + 8 * k. */
static void digest_one(const SHA256_CTX *start_ctx, const unsigned char *bytes, size_t len, char *out_hex,
                       unsigned char *out_keys, Py_ssize_t k) {
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256_CTX ctx = *start_ctx;
    SHA256_Update(&ctx, bytes, len);
    SHA256_Final(md, &ctx);
    char *w = out_hex + 64 * k;
    for (int b = 0; b < SHA256_DIGEST_LENGTH; b++) {
        memcpy(w + 2 * b, HEX_PAIRS + 2 * md[b], 2);
    }
    memcpy(out_keys + 8 * k, md, 8);
}

/* sha256_hex_into(offsets, data, start, n, prefix, out_hex, out_keys, pos) -> None
 *
 * SHA-256 of `prefix` + each string, written like sha256_hex but into caller-owned (writable) buffers at
 * digest positions pos .. pos + n - 1, so several pieces (a fast path's values, the scalar reference's,
 * one phone country code after another) end up in one array without a copy or a joined string.
 */
static PyObject *sha256_hex_into(PyObject *self, PyObject *args) {
    Py_buffer offsets, data, prefix, out_hex, out_keys;
    Py_ssize_t start, n, pos;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*nny*w*w*n", &offsets, &data, &start, &n, &prefix, &out_hex, &out_keys, &pos)) {
        return NULL;
    }
    PyObject *result = NULL;
    if (start < 0 || n < 0 || (start + n + 1) > offsets.len / (Py_ssize_t)sizeof(int32_t)) {
        PyErr_SetString(PyExc_ValueError, "offsets do not cover the requested values");
        goto done;
    }
    if (check_outputs(&out_hex, &out_keys, pos, n) < 0) {
        goto done;
    }
    const int32_t *offs = (const int32_t *)offsets.buf + start;
    const unsigned char *bytes = (const unsigned char *)data.buf;
    const Py_ssize_t data_len = data.len;
    char *hex = (char *)out_hex.buf;
    unsigned char *keys = (unsigned char *)out_keys.buf;
    int bad = 0;
    Py_BEGIN_ALLOW_THREADS
    SHA256_CTX with_prefix;
    SHA256_Init(&with_prefix);
    SHA256_Update(&with_prefix, prefix.buf, (size_t)prefix.len);
    for (Py_ssize_t i = 0; i < n; i++) {
        const int32_t lo = offs[i], hi = offs[i + 1];
        if (lo < 0 || hi < lo || (Py_ssize_t)hi > data_len) {
            bad = 1;
            break;
        }
        digest_one(&with_prefix, bytes + lo, (size_t)(hi - lo), hex, keys, pos + i);
    }
    Py_END_ALLOW_THREADS
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "invalid string offsets");
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&data);
    PyBuffer_Release(&prefix);
    PyBuffer_Release(&out_hex);
    PyBuffer_Release(&out_keys);
    return result;
}

/* email_sha256_into(offsets, data, start, n, max_length, refused_tlds, out_hex, out_keys, pos) -> (flags, count)
 *
 * The whole email fast path in one pass: trim spaces, ASCII-lowercase, the email_fast check (at most
 * max_length bytes once trimmed, EMAIL_FAST_RE, TLD not refused) and, for the values that pass, SHA-256
 * of the lowercased text written at digest positions pos, pos + 1, ... in row order. flags: one byte
 * per value, 1 if it passed (was hashed). count: how many did. Equivalent to kinds.trim_lower, then
 * email_fast, then sha256_hex of the passing values, without the three intermediate string arrays: a
 * value with a tab or a byte outside printable ASCII never passes (EMAIL_FAST_RE has no such byte), so
 * trimming spaces alone is ascii_trim(" \t") for every value that can pass.
 */
static PyObject *email_sha256_into(PyObject *self, PyObject *args) {
    Py_buffer offsets, data, refused, out_hex, out_keys;
    Py_ssize_t start, n, max_length, pos;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*nnny*w*w*n", &offsets, &data, &start, &n, &max_length, &refused, &out_hex,
                          &out_keys, &pos)) {
        return NULL;
    }
    PyObject *result = NULL, *flags = NULL;
    enum { MAX_FAST = 256 };
    if (start < 0 || n < 0 || (start + n + 1) > offsets.len / (Py_ssize_t)sizeof(int32_t)) {
        PyErr_SetString(PyExc_ValueError, "offsets do not cover the requested values");
        goto done;
    }
    if (max_length < 0 || max_length > MAX_FAST) {
        PyErr_SetString(PyExc_ValueError, "max_length must be between 0 and 256");
        goto done;
    }
    if (check_outputs(&out_hex, &out_keys, pos, n) < 0) {
        goto done;
    }
    flags = PyBytes_FromStringAndSize(NULL, n);
    if (flags == NULL) {
        goto done;
    }
    const int32_t *offs = (const int32_t *)offsets.buf + start;
    const unsigned char *bytes = (const unsigned char *)data.buf;
    const Py_ssize_t data_len = data.len;
    const unsigned char *refused_tlds = (const unsigned char *)refused.buf;
    const Py_ssize_t refused_len = refused.len;
    char *hex = (char *)out_hex.buf;
    unsigned char *keys = (unsigned char *)out_keys.buf;
    unsigned char *out_flags = (unsigned char *)PyBytes_AS_STRING(flags);
    Py_ssize_t count = 0;
    int bad = 0;
    Py_BEGIN_ALLOW_THREADS
    SHA256_CTX empty;
    SHA256_Init(&empty);
    unsigned char lowered[MAX_FAST];
    for (Py_ssize_t i = 0; i < n; i++) {
        int32_t lo = offs[i], hi = offs[i + 1];
        if (lo < 0 || hi < lo || (Py_ssize_t)hi > data_len) {
            bad = 1;
            break;
        }
        while (lo < hi && bytes[lo] == ' ') lo++;
        while (hi > lo && bytes[hi - 1] == ' ') hi--;
        const int32_t len = hi - lo;
        int pass = 0;
        if (len > 0 && (Py_ssize_t)len <= max_length) {
            for (int32_t j = 0; j < len; j++) {
                const unsigned char c = bytes[lo + j];
                lowered[j] = (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
            }
            pass = email_fast_match(lowered, len, refused_tlds, refused_len);
        }
        out_flags[i] = (unsigned char)pass;
        if (pass) {
            digest_one(&empty, lowered, (size_t)len, hex, keys, pos + count);
            count++;
        }
    }
    Py_END_ALLOW_THREADS
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "invalid string offsets");
        goto done;
    }
    result = Py_BuildValue("(On)", flags, count);
done:
    Py_XDECREF(flags);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&data);
    PyBuffer_Release(&refused);
    PyBuffer_Release(&out_hex);
    PyBuffer_Release(&out_keys);
    return result;
}

/* hmac_sha256_hex(offsets, data, start, n, key, prefix, hex_chars) -> (out, out_offsets)
 *
 * HMAC-SHA256 (RFC 2104) of each string under `key`, written as `prefix` + the first `hex_chars` hex
 * characters of the MAC: the data and int32 offsets of a string array. The key's inner and outer pad
 * blocks are hashed once (SHA-256 midstates), so each value costs its own blocks plus one more.
 * Used for row keys and event ids that look like identifiers (ttsync.identity.rowkeys).
 */
static PyObject *hmac_sha256_hex(PyObject *self, PyObject *args) {
    Py_buffer offsets, data, key, prefix;
    Py_ssize_t start, n, hex_chars;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*nny*y*n", &offsets, &data, &start, &n, &key, &prefix, &hex_chars)) {
        return NULL;
    }
    PyObject *result = NULL, *out = NULL, *out_offsets = NULL;
    const Py_ssize_t width = prefix.len + hex_chars;
    if (start < 0 || n < 0 || hex_chars < 0 || hex_chars > 64 || key.len > 64 || width <= 0 ||
        n > (INT32_MAX / width) - 1 || (start + n + 1) > offsets.len / (Py_ssize_t)sizeof(int32_t)) {
        PyErr_SetString(PyExc_ValueError, "bad arguments: offsets, key (at most 64 bytes) or width");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, width * n);
    out_offsets = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)sizeof(int32_t) * (n + 1));
    if (out == NULL || out_offsets == NULL) {
        goto done;
    }
    unsigned char ipad[64], opad[64];
    memset(ipad, 0, 64);
    memcpy(ipad, key.buf, (size_t)key.len);
    memcpy(opad, ipad, 64);
    for (int k = 0; k < 64; k++) {
        ipad[k] ^= 0x36;
        opad[k] ^= 0x5c;
    }
    const int32_t *offs = (const int32_t *)offsets.buf + start;
    const unsigned char *bytes = (const unsigned char *)data.buf;
    const Py_ssize_t data_len = data.len;
    const char *pre = (const char *)prefix.buf;
    const Py_ssize_t pre_len = prefix.len;
    char *w = PyBytes_AS_STRING(out);
    int32_t *w_offs = (int32_t *)PyBytes_AS_STRING(out_offsets);
    int bad = 0;
    Py_BEGIN_ALLOW_THREADS
    SHA256_CTX inner0, outer0, ctx;
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256_Init(&inner0);
    SHA256_Update(&inner0, ipad, 64);
    SHA256_Init(&outer0);
    SHA256_Update(&outer0, opad, 64);
    for (Py_ssize_t i = 0; i < n; i++) {
        const int32_t lo = offs[i], hi = offs[i + 1];
        if (lo < 0 || hi < lo || (Py_ssize_t)hi > data_len) {
            bad = 1;
            break;
        }
        ctx = inner0;
        SHA256_Update(&ctx, bytes + lo, (size_t)(hi - lo));
        SHA256_Final(md, &ctx);
        ctx = outer0;
        SHA256_Update(&ctx, md, SHA256_DIGEST_LENGTH);
        SHA256_Final(md, &ctx);
        char *v = w + width * i;
        memcpy(v, pre, (size_t)pre_len);
        for (Py_ssize_t k = 0; k < hex_chars; k++) {
            const unsigned char b = md[k / 2];
            v[pre_len + k] = HEX_DIGITS[(k % 2) ? (b & 15) : (b >> 4)];
        }
        w_offs[i] = (int32_t)(width * i);
    }
    w_offs[n] = (int32_t)(width * n);
    Py_END_ALLOW_THREADS
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "invalid string offsets");
        goto done;
    }
    result = PyTuple_Pack(2, out, out_offsets);
done:
    Py_XDECREF(out);
    Py_XDECREF(out_offsets);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&data);
    PyBuffer_Release(&key);
    PyBuffer_Release(&prefix);
    return result;
}

static PyMethodDef METHODS[] = {
    {"email_fast", email_fast, METH_VARARGS,
     "email_fast(offsets, data, start, n, max_length, refused_tlds) -> one byte per value."},
    {"sha256_hex", sha256_hex, METH_VARARGS,
     "sha256_hex(offsets, data, start, n) -> (hex, hex_offsets, keys) for an Arrow string array."},
    {"hmac_sha256_hex", hmac_sha256_hex, METH_VARARGS,
     "hmac_sha256_hex(offsets, data, start, n, key, prefix, hex_chars) -> (out, out_offsets)."},
    {"sha256_hex_into", sha256_hex_into, METH_VARARGS,
     "sha256_hex_into(offsets, data, start, n, prefix, out_hex, out_keys, pos) -> None."},
    {"email_sha256_into", email_sha256_into, METH_VARARGS,
     "email_sha256_into(offsets, data, start, n, max_length, refused_tlds, out_hex, out_keys, pos) -> (flags, count)."},
    {"phone_scan", phone_scan, METH_VARARGS,
     "phone_scan(offsets, data, start, n) -> (digits, digit_offsets, flags) for an Arrow string array."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "_kernels", NULL, -1, METHODS, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__kernels(void) {
    init_tables();
    return PyModule_Create(&MODULE);
}
