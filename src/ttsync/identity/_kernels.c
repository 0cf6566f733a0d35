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

static int phone_add_functions(PyObject *module); /* the phone section, at the end of this file */

PyMODINIT_FUNC PyInit__kernels(void) {
    init_tables();
    PyObject *module = PyModule_Create(&MODULE);
    if (module != NULL && phone_add_functions(module) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}

/* ================================================================================================
 * Phone section: parse + is_valid_number + E.164 of phone strings in one pass (phone_e164).
 *
 * Why: the vectorized phone path ran ~25 RE2 and Arrow passes per batch (shape, country code, national
 * prefix, lengths, then one RE2 pass per number type and region, with a filter and a scatter around
 * each): ~500 ns/row. Here each row is decided in one walk over its digits, against automata compiled
 * from libphonenumber's own patterns (ttsync.identity.phone_dfa; the tables are built and packed by
 * ttsync.identity.phone_rules). The steps are those of phone_fast's Arrow path, which stays the
 * reference when this module is not built and for regions whose patterns do not compile.
 *
 * Tables (int32 words, offsets in words):
 *   automaton: [states, start, 10 transitions per state, 1 flag word per state]; state 0 is dead;
 *              flag bit 0: a match ends here, bit 1: a match ends here if the input ends here.
 *   region:    [magic, country code, flags (bit 0: national prefix transform), type count, general
 *              lengths mask, general, idd, national prefix, leading digits (automaton offsets from the
 *              region's start, 0 = none), 25 length results, then (lengths mask, automaton) per type].
 *   country code: [magic, chain length, parsing region, chain regions...] (region offsets), regions.
 * ================================================================================================ */

#define PH_REGION_MAGIC 0x50485231 /* "PHR1" */
#define PH_CC_MAGIC 0x50484331     /* "PHC1" */
#define PH_HEADER 34               /* region header words before the type pairs */
#define PH_MAX_DIGITS 17           /* phone_fast.MAX_FAST_DIGITS */
#define PH_MIN_NSN 2               /* libphonenumber's _MIN_LENGTH_FOR_NSN */
#define PH_MAX_INPUT 250           /* parse() rejects longer strings */
#define PH_CODES 1000
#define PH_MAX_CHAIN 64

enum { PH_OK = 0, PH_INVALID = 1, PH_REGION_UNKNOWN = 2, PH_DEFER = 3, PH_NEED = 4, PH_ARROW = 5 };

typedef struct {
    const int32_t *w; /* the region's first word */
    int32_t cc, flags, types, general_lengths, general, idd, npfp, leading;
    const int32_t *length_result; /* 25 entries */
    const int32_t *type_pairs;    /* (lengths mask, automaton) per type */
} ph_region;

typedef struct {
    int state; /* 0: unknown code, 1: known but no table (NEED), 2: unsupported (ARROW), 3: table */
    const int32_t *w;
    int32_t words;
} ph_code;

typedef struct {
    int32_t min_valid, keep_mask, too_long, plus_defer;
} ph_params;

/* Whether the automaton at `off` (already checked) accepts the whole of d[0:len]. */
static int ph_full(const int32_t *w, int32_t off, const unsigned char *d, int len) {
    const int32_t states = w[off];
    const int32_t *trans = w + off + 2;
    int32_t s = w[off + 1];
    for (int i = 0; i < len; i++) {
        s = trans[10 * s + (d[i] - '0')];
        if (s == 0) {
            return 0;
        }
    }
    return (trans[10 * states + s] & 2) != 0;
}

/* Where re.match of the automaton's pattern ends in d[0:len] (leftmost-first), or -1. */
static int ph_prefix(const int32_t *w, int32_t off, const unsigned char *d, int len) {
    const int32_t states = w[off];
    const int32_t *trans = w + off + 2;
    const int32_t *flags = trans + 10 * states;
    int32_t s = w[off + 1];
    int end = -1;
    for (int pos = 0;; pos++) {
        if (pos == len) {
            if (flags[s] & 2) {
                end = pos;
            }
            break;
        }
        if (flags[s] & 1) {
            end = pos;
        }
        s = trans[10 * s + (d[pos] - '0')];
        if (s == 0) {
            break;
        }
    }
    return end;
}

/* Check an automaton at word `off` of a region of `words` words: sizes, start and every transition. */
static int ph_check_automaton(const int32_t *w, int64_t words, int32_t off) {
    if (off == 0) {
        return 0;
    }
    if (off < PH_HEADER || off + 2 > words) {
        return -1;
    }
    const int64_t states = w[off];
    if (states < 1 || off + 2 + 11 * states > words || w[off + 1] < 0 || w[off + 1] >= states) {
        return -1;
    }
    const int32_t *trans = w + off + 2;
    for (int64_t i = 0; i < 10 * states; i++) {
        if (trans[i] < 0 || trans[i] >= states) {
            return -1;
        }
    }
    return 0;
}

/* Read (and with check set, verify) the region at word `base` of a table of `words` words. */
static int ph_region_at(const int32_t *table, int64_t words, int64_t base, ph_region *r, int check) {
    if (check && (base < 0 || base + PH_HEADER > words || table[base] != PH_REGION_MAGIC)) {
        return -1;
    }
    const int32_t *w = table + base;
    r->w = w;
    r->cc = w[1];
    r->flags = w[2];
    r->types = w[3];
    r->general_lengths = w[4];
    r->general = w[5];
    r->idd = w[6];
    r->npfp = w[7];
    r->leading = w[8];
    r->length_result = w + 9;
    r->type_pairs = w + PH_HEADER;
    if (!check) {
        return 0;
    }
    const int64_t size = words - base;
    if (r->cc < 1 || r->cc >= PH_CODES || r->types < 0 || PH_HEADER + 2 * (int64_t)r->types > size || ph_check_automaton(w, size, r->general) ||
        ph_check_automaton(w, size, r->idd) || ph_check_automaton(w, size, r->npfp) ||
        ph_check_automaton(w, size, r->leading)) {
        return -1;
    }
    for (int32_t t = 0; t < r->types; t++) {
        if (r->type_pairs[2 * t + 1] == 0 || ph_check_automaton(w, size, r->type_pairs[2 * t + 1])) {
            return -1;
        }
    }
    for (int k = 0; k < 25; k++) {
        if (r->length_result[k] < 0 || r->length_result[k] > 30) { /* a shift count of the keep mask */
            return -1;
        }
    }
    return 0;
}

/* Check a country code table: magic, chain length and every region in it. */
static int ph_check_code(const int32_t *w, int64_t words) {
    if (words < 3 || w[0] != PH_CC_MAGIC || w[1] < 1 || w[1] > PH_MAX_CHAIN || 3 + (int64_t)w[1] > words) {
        return -1;
    }
    ph_region r;
    for (int32_t k = 0; k < w[1] + 1; k++) {
        if (ph_region_at(w, words, w[2 + k], &r, 1) < 0) {
            return -1;
        }
    }
    return 0;
}

/* _number_type_helper(number, metadata) != UNKNOWN: the general description, then any type. */
static int ph_known(const ph_region *r, const unsigned char *d, int len) {
    if (r->general == 0 || !((uint32_t)r->general_lengths >> len & 1u) || !ph_full(r->w, r->general, d, len)) {
        return 0;
    }
    for (int32_t t = 0; t < r->types; t++) {
        if (((uint32_t)r->type_pairs[2 * t] >> len & 1u) && ph_full(r->w, r->type_pairs[2 * t + 1], d, len)) {
            return 1;
        }
    }
    return 0;
}

/* is_valid_number for a national number of the country code whose table is `w`. */
static int ph_valid(const int32_t *w, const unsigned char *d, int len) {
    ph_region r;
    const int32_t chain = w[1];
    for (int32_t k = 0; k < chain; k++) {
        ph_region_at(w, 0, w[3 + k], &r, 0);
        if (chain == 1) {
            return ph_known(&r, d, len);
        }
        /* region_code_for_number: a region with leading digits is chosen by them alone. */
        if (r.leading != 0) {
            if (ph_prefix(r.w, r.leading, d, len) >= 0) {
                return ph_known(&r, d, len);
            }
        } else if (ph_known(&r, d, len)) {
            return 1;
        }
    }
    return 0;
}

/* _maybe_strip_national_prefix_carrier_code: how many leading digits to drop; -1 to defer. */
static int ph_strip(const ph_region *r, const unsigned char *d, int len) {
    if (r->npfp == 0) {
        return 0;
    }
    const int m = ph_prefix(r->w, r->npfp, d, len);
    if (m < 0) {
        return 0;
    }
    if (r->flags & 1) {
        return -1; /* the prefix is rewritten with capture groups: the scalar reference */
    }
    const int keep = r->general != 0 && ph_full(r->w, r->general, d, len) && !ph_full(r->w, r->general, d + m, len - m);
    return keep ? 0 : m;
}

static int ph_length_result(const ph_region *r, int len) { return r->length_result[len < 24 ? len : 24]; }

/* Write the country code's digits then d[0:len] at out; returns the bytes written. */
static int ph_write(unsigned char *out, int32_t cc, const unsigned char *d, int len) {
    int k = 0;
    if (cc >= 100) {
        out[k++] = (unsigned char)('0' + cc / 100);
    }
    if (cc >= 10) {
        out[k++] = (unsigned char)('0' + cc / 10 % 10);
    }
    out[k++] = (unsigned char)('0' + cc % 10);
    memcpy(out + k, d, (size_t)len);
    return k + len;
}

/* The end of parse() once the country code is known (`parse`: the metadata parse() reads it with),
 * then is_valid_number; an OK number is written at out (*written bytes). */
static int ph_finish(const ph_region *parse, const ph_code *code, const ph_params *p, const unsigned char *d, int len,
                     unsigned char *out, int *written) {
    if (len < PH_MIN_NSN) {
        return PH_INVALID;
    }
    int s = ph_strip(parse, d, len);
    if (s < 0) {
        return PH_DEFER;
    }
    /* parse() keeps the prefix when what remains is too short, local-only or of an impossible length. */
    if (p->keep_mask >> ph_length_result(parse, len - s) & 1) {
        s = 0;
    }
    d += s;
    len -= s;
    if (len < PH_MIN_NSN || len > PH_MAX_DIGITS || !ph_valid(code->w, d, len)) {
        return PH_INVALID;
    }
    *written = ph_write(out, parse->cc, d, len);
    return PH_OK;
}

static int ph_code_state(const ph_code *codes, int32_t cc) {
    const int state = codes[cc].state;
    return state == 1 ? PH_NEED : PH_ARROW;
}

/* Numbers after `+` (from_plus) or an international prefix: the country code, then the rest. */
static int ph_international(const ph_region *home, const ph_code *codes, const ph_params *p, const unsigned char *d,
                            int len, int from_plus, unsigned char *out, int *written, int32_t *need) {
    if (len <= PH_MIN_NSN) {
        return PH_INVALID; /* TOO_SHORT_AFTER_IDD */
    }
    int32_t cc = 0;
    int width = 0;
    if (d[0] != '0') {
        int32_t v = 0;
        for (int k = 1; k <= 3 && k <= len; k++) { /* country codes are prefix-free */
            v = v * 10 + (d[k - 1] - '0');
            if (codes[v].state != 0) {
                cc = v;
                width = k;
                break;
            }
        }
    }
    if (cc == 0) {
        if (!from_plus) {
            return PH_INVALID;
        }
        if (p->plus_defer) {
            return PH_DEFER; /* per-row regions: parse() retries without the plus */
        }
        if (home == NULL) {
            return PH_REGION_UNKNOWN;
        }
        /* parse() retries in the default region: only its own code or its international prefix can
         * give a number then (the scalar reference decides those). */
        unsigned char code[4];
        const int n = ph_write(code, home->cc, d, 0);
        const int retry = (n <= len && memcmp(d, code, (size_t)n) == 0) ||
                          (home->idd != 0 && ph_prefix(home->w, home->idd, d, len) >= 0);
        return retry ? PH_DEFER : PH_INVALID;
    }
    const ph_code *code = &codes[cc];
    if (code->state != 3) {
        *need = cc;
        return ph_code_state(codes, cc);
    }
    ph_region parse;
    ph_region_at(code->w, 0, code->w[2], &parse, 0);
    return ph_finish(&parse, code, p, d + width, len - width, out, written);
}

/* Numbers without `+`, read in the default region `home`. */
static int ph_national(const ph_region *home, const ph_code *codes, const ph_params *p, const unsigned char *d, int len,
                       unsigned char *out, int *written, int32_t *need) {
    if (home == NULL) {
        /* With fewer than 3 digits parse() may fail on viability before it looks at the region. */
        return len < 3 ? PH_DEFER : PH_REGION_UNKNOWN;
    }
    if (len < p->min_valid) {
        return PH_INVALID; /* too few digits to be valid anywhere */
    }
    if (home->idd != 0) {
        const int m = ph_prefix(home->w, home->idd, d, len);
        /* The prefix only counts when the next digit is not 0 (country codes never start with 0). */
        if (m >= 0 && (m == len || d[m] != '0')) {
            return ph_international(home, codes, p, d + m, len - m, 0, out, written, need);
        }
    }
    if (home->cc <= 0 || home->cc >= PH_CODES) {
        return PH_ARROW;
    }
    const ph_code *code = &codes[home->cc];
    if (code->state != 3) {
        *need = home->cc;
        return ph_code_state(codes, home->cc);
    }
    /* A national number that starts with the region's own country code (e.g. 4930... read in DE). */
    unsigned char cc_text[4];
    const int cw = ph_write(cc_text, home->cc, d, 0);
    if (cw <= len && memcmp(d, cc_text, (size_t)cw) == 0) {
        const unsigned char *rest = d + cw;
        int rest_len = len - cw;
        const int s = ph_strip(home, rest, rest_len);
        if (s < 0) {
            return PH_DEFER;
        }
        rest += s;
        rest_len -= s;
        const int general_full = home->general != 0 && ph_full(home->w, home->general, d, len);
        const int general_rest = home->general != 0 && ph_full(home->w, home->general, rest, rest_len);
        if ((!general_full && general_rest) || ph_length_result(home, len) == p->too_long) {
            ph_region parse;
            ph_region_at(code->w, 0, code->w[2], &parse, 0);
            return ph_finish(&parse, code, p, rest, rest_len, out, written);
        }
    }
    return ph_finish(home, code, p, d, len, out, written);
}

/* phone_e164(offsets, data, start, n, home, codes, params) -> (status, out, out_offsets, count, need)
 *
 * Decides each printable-ASCII phone string as phone_fast.parse_phones does: status, one byte per
 * string: 0 valid, 1 invalid phone, 2 unknown region, 3 left to the scalar reference, 4 needs the table
 * of a country code not given yet, 5 left to the Arrow path (a table its patterns could not compile
 * into). Valid numbers are written as country code + national number (no `+`), in row order, as the
 * data and int32 offsets of a string array of `count` values. need: 1000 bytes, 1 for each country code
 * whose table status 4 asked for.
 *
 * home: the default region's table (bytes), or None for no supported default region; codes: a tuple of
 * 1000 entries by country code: None (unknown code), b"" (known, no table yet), b"-" (unsupported), or
 * the code's table; params: int32 words (shortest valid length, mask of the length results that keep
 * the national prefix, TOO_LONG's value, whether `+` with an unknown code is deferred).
 */
static PyObject *phone_e164(PyObject *self, PyObject *args) {
    Py_buffer offsets, data, params_buf;
    Py_ssize_t start, n;
    PyObject *home_obj, *codes_obj;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*nnOOy*", &offsets, &data, &start, &n, &home_obj, &codes_obj, &params_buf)) {
        return NULL;
    }
    PyObject *result = NULL, *status = NULL, *out = NULL, *out_offsets = NULL, *need = NULL;
    ph_code *codes = NULL;
    ph_params p;
    ph_region home_region, *home = NULL;
    if (start < 0 || n < 0 || n > (INT32_MAX / 4) - 1 ||
        (start + n + 1) > offsets.len / (Py_ssize_t)sizeof(int32_t)) {
        PyErr_SetString(PyExc_ValueError, "offsets do not cover the requested values");
        goto done;
    }
    if (params_buf.len != 4 * (Py_ssize_t)sizeof(int32_t)) {
        PyErr_SetString(PyExc_ValueError, "params must be four int32 words");
        goto done;
    }
    memcpy(&p, params_buf.buf, sizeof p);
    if (!PyTuple_Check(codes_obj) || PyTuple_GET_SIZE(codes_obj) != PH_CODES) {
        PyErr_SetString(PyExc_ValueError, "codes must be a tuple of 1000 entries");
        goto done;
    }
    codes = PyMem_Calloc(PH_CODES, sizeof(ph_code));
    if (codes == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t cc = 0; cc < PH_CODES; cc++) {
        PyObject *item = PyTuple_GET_ITEM(codes_obj, cc);
        if (item == Py_None) {
            continue;
        }
        if (!PyBytes_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "country code tables must be bytes or None");
            goto done;
        }
        const Py_ssize_t size = PyBytes_GET_SIZE(item);
        if (size == 0) {
            codes[cc].state = 1;
        } else if (size < 4 || size % 4 != 0) {
            codes[cc].state = 2;
        } else {
            codes[cc].w = (const int32_t *)PyBytes_AS_STRING(item);
            codes[cc].words = (int32_t)(size / 4);
            if (ph_check_code(codes[cc].w, codes[cc].words) < 0) {
                PyErr_Format(PyExc_ValueError, "invalid table for country code %zd", cc);
                goto done;
            }
            codes[cc].state = 3;
        }
    }
    if (home_obj != Py_None) {
        if (!PyBytes_Check(home_obj) || PyBytes_GET_SIZE(home_obj) % 4 != 0 ||
            ph_region_at((const int32_t *)PyBytes_AS_STRING(home_obj), PyBytes_GET_SIZE(home_obj) / 4, 0,
                         &home_region, 1) < 0) {
            PyErr_SetString(PyExc_ValueError, "invalid default region table");
            goto done;
        }
        home = &home_region;
    }
    const int32_t *offs = (const int32_t *)offsets.buf + start;
    const int32_t first = offs[0], last = offs[n];
    if (first < 0 || last < first || (Py_ssize_t)last > data.len) {
        PyErr_SetString(PyExc_ValueError, "invalid string offsets");
        goto done;
    }
    /* An output is a country code (at most 3 digits) and some of the row's digits. */
    status = PyBytes_FromStringAndSize(NULL, n);
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(last - first) + 3 * n);
    out_offsets = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)sizeof(int32_t) * (n + 1));
    need = PyBytes_FromStringAndSize(NULL, PH_CODES);
    if (status == NULL || out == NULL || out_offsets == NULL || need == NULL) {
        goto done;
    }
    const unsigned char *bytes = (const unsigned char *)data.buf;
    unsigned char *st = (unsigned char *)PyBytes_AS_STRING(status);
    unsigned char *o = (unsigned char *)PyBytes_AS_STRING(out);
    int32_t *oo = (int32_t *)PyBytes_AS_STRING(out_offsets);
    unsigned char *needed = (unsigned char *)PyBytes_AS_STRING(need);
    memset(needed, 0, PH_CODES);
    int bad = 0;
    Py_ssize_t count = 0;
    Py_BEGIN_ALLOW_THREADS
    int32_t written_total = 0;
    oo[0] = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        const int32_t lo = offs[i], hi = offs[i + 1];
        if (lo < first || hi < lo || hi > last) {
            bad = 1;
            break;
        }
        unsigned char d[PH_MAX_DIGITS + 1];
        int digits = 0, shape = 1, plus = 0, ascii = 1;
        for (int32_t j = lo; j < hi; j++) {
            const unsigned char c = bytes[j];
            if (c >= '0' && c <= '9') {
                if (digits <= PH_MAX_DIGITS) {
                    d[digits] = c;
                }
                digits++;
            } else if (c == '+') {
                shape &= !plus && digits == 0;
                plus = 1;
            } else if (c != ' ' && c != '(' && c != ')' && c != '.' && c != '/' && c != '-') {
                shape = 0;
                ascii &= c < 0x80;
            }
        }
        int s, written = 0;
        int32_t want = -1;
        if (!shape || hi - lo > PH_MAX_INPUT) {
            /* ASCII without a digit cannot start a number (NOT_A_NUMBER); anything else: scalar. */
            s = (digits == 0 && ascii) ? PH_INVALID : PH_DEFER;
        } else if (digits == 0) {
            s = PH_INVALID;
        } else if (digits > PH_MAX_DIGITS || (plus && digits < 4)) {
            s = PH_DEFER; /* long numbers, and parse()'s retry logic for short `+` numbers: scalar */
        } else if (plus) {
            s = ph_international(home, codes, &p, d, digits, 1, o + written_total, &written, &want);
        } else {
            s = ph_national(home, codes, &p, d, digits, o + written_total, &written, &want);
        }
        if (s == PH_NEED && want >= 0 && want < PH_CODES) {
            needed[want] = 1;
        }
        st[i] = (unsigned char)s;
        if (s == PH_OK) {
            written_total += written;
            oo[++count] = written_total;
        }
    }
    Py_END_ALLOW_THREADS
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "invalid string offsets");
        goto done;
    }
    result = Py_BuildValue("(OOOnO)", status, out, out_offsets, count, need);
done:
    PyMem_Free(codes);
    Py_XDECREF(status);
    Py_XDECREF(out);
    Py_XDECREF(out_offsets);
    Py_XDECREF(need);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&data);
    PyBuffer_Release(&params_buf);
    return result;
}

static PyMethodDef PHONE_METHODS[] = {
    {"phone_e164", phone_e164, METH_VARARGS,
     "phone_e164(offsets, data, start, n, home, codes, params) -> (status, out, out_offsets, count, need)."},
    {NULL, NULL, 0, NULL},
};

static int phone_add_functions(PyObject *module) { return PyModule_AddFunctions(module, PHONE_METHODS); }
