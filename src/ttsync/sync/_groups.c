/*
 * Campaign group buckets (ttsync.sync.groups) for a whole Arrow string array, and the digest words of
 * hex digests (ttsync.sync.prepare.ids_batch; see hex_words below).
 *
 * Why: a campaign's plan assigns every person of its audience to a group by a keyed BLAKE2b of
 * (campaign, key), the rule fixed by sync.groups.bucket_of. A hashlib loop costs ~1-2 us per key while
 * holding the GIL (keyed init hashes a whole key block per call, then the digest, the int conversion
 * and the modulo are Python objects): at 10M people it was most of the plan's CPU. Here the key block is
 * compressed once (a keyed BLAKE2b's first block is the key, zero-padded), so each value costs its own
 * blocks only (one for keys up to 128 bytes with the prefix), in a C loop without the GIL.
 *
 * BLAKE2b as in RFC 7693 (the reference implementation's compression function); the results are
 * checked against hashlib.blake2b in tests/test_campaign_groups.py. Optional: if this module cannot be
 * built, sync.groups uses hashlib with identical results.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static const uint64_t IV[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
    0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

static const uint8_t SIGMA[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4}, {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13}, {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11}, {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5}, {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
};

#define ROTR64(x, n) (((x) >> (n)) | ((x) << (64 - (n))))
#define G(a, b, c, d, x, y)          \
    do {                             \
        a = a + b + (x);             \
        d = ROTR64(d ^ a, 32);       \
        c = c + d;                   \
        b = ROTR64(b ^ c, 24);       \
        a = a + b + (y);             \
        d = ROTR64(d ^ a, 16);       \
        c = c + d;                   \
        b = ROTR64(b ^ c, 63);       \
    } while (0)

static uint64_t load64(const unsigned char *p) {
    uint64_t w = 0;
    for (int i = 7; i >= 0; i--) {
        w = (w << 8) | p[i];
    }
    return w;
}

/* One compression of a 128-byte block; `t`: bytes hashed so far including this block; `last`: final. */
static void compress(uint64_t h[8], const unsigned char block[128], uint64_t t, int last) {
    uint64_t m[16], v[16];
    for (int i = 0; i < 16; i++) {
        m[i] = load64(block + 8 * i);
    }
    for (int i = 0; i < 8; i++) {
        v[i] = h[i];
        v[i + 8] = IV[i];
    }
    v[12] ^= t; /* the counter's high word stays 0: inputs here are far below 2^64 bytes */
    if (last) {
        v[14] = ~v[14];
    }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 12 /* constant message indices: m[] stays in registers */
#endif
    for (int r = 0; r < 12; r++) {
        const uint8_t *s = SIGMA[r];
        G(v[0], v[4], v[8], v[12], m[s[0]], m[s[1]]);
        G(v[1], v[5], v[9], v[13], m[s[2]], m[s[3]]);
        G(v[2], v[6], v[10], v[14], m[s[4]], m[s[5]]);
        G(v[3], v[7], v[11], v[15], m[s[6]], m[s[7]]);
        G(v[0], v[5], v[10], v[15], m[s[8]], m[s[9]]);
        G(v[1], v[6], v[11], v[12], m[s[10]], m[s[11]]);
        G(v[2], v[7], v[8], v[13], m[s[12]], m[s[13]]);
        G(v[3], v[4], v[9], v[14], m[s[14]], m[s[15]]);
    }
    for (int i = 0; i < 8; i++) {
        h[i] ^= v[i] ^ v[i + 8];
    }
}

/* buckets(offsets, data, start, n, key, prefix, modulus) -> int32 per value (bytes)
 *
 * offsets/data: the buffers of an Arrow string array (start: its offset, n: its length, no nulls);
 * each value's bucket is int.from_bytes(blake2b(prefix + value, key=key, digest_size=8), "big") %
 * modulus. key: 1 to 64 bytes.
 */
static PyObject *buckets(PyObject *self, PyObject *args) {
    Py_buffer offsets, data, key, prefix;
    Py_ssize_t start, n, modulus;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*nny*y*n", &offsets, &data, &start, &n, &key, &prefix, &modulus)) {
        return NULL;
    }
    PyObject *out = NULL;
    unsigned char *scratch = NULL;
    if (start < 0 || n < 0 || key.len < 1 || key.len > 64 || modulus < 1 || modulus > INT32_MAX ||
        (start + n + 1) > offsets.len / (Py_ssize_t)sizeof(int32_t)) {
        PyErr_SetString(PyExc_ValueError, "bad arguments: offsets, key (1 to 64 bytes) or modulus");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)sizeof(int32_t) * n);
    if (out == NULL) {
        goto done;
    }
    const int32_t *offs = (const int32_t *)offsets.buf + start;
    const unsigned char *bytes = (const unsigned char *)data.buf;
    int32_t longest = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        const int32_t lo = offs[i], hi = offs[i + 1];
        if (lo < 0 || hi < lo || (Py_ssize_t)hi > data.len) {
            PyErr_SetString(PyExc_ValueError, "invalid string offsets");
            Py_CLEAR(out);
            goto done;
        }
        if (hi - lo > longest) {
            longest = hi - lo;
        }
    }
    /* prefix + value, zero-padded to whole blocks */
    const size_t room = ((size_t)prefix.len + (size_t)longest + 127) / 128 * 128 + 128;
    scratch = PyMem_Malloc(room);
    if (scratch == NULL) {
        PyErr_NoMemory();
        Py_CLEAR(out);
        goto done;
    }
    int32_t *w = (int32_t *)PyBytes_AS_STRING(out);
    const uint64_t mod = (uint64_t)modulus;
    Py_BEGIN_ALLOW_THREADS
    uint64_t keyed[8], h[8];
    unsigned char block[128];
    for (int i = 0; i < 8; i++) {
        keyed[i] = IV[i];
    }
    keyed[0] ^= 0x01010000ULL ^ ((uint64_t)key.len << 8) ^ 8; /* fanout 1, depth 1, key length, 8-byte digest */
    memset(block, 0, 128);
    memcpy(block, key.buf, (size_t)key.len);
    compress(keyed, block, 128, 0); /* never the last block: a message always follows (the prefix) */
    memcpy(scratch, prefix.buf, (size_t)prefix.len);
    for (Py_ssize_t i = 0; i < n; i++) {
        const size_t len = (size_t)prefix.len + (size_t)(offs[i + 1] - offs[i]);
        memcpy(scratch + prefix.len, bytes + offs[i], (size_t)(offs[i + 1] - offs[i]));
        const size_t blocks = len == 0 ? 1 : (len + 127) / 128;
        memset(scratch + len, 0, blocks * 128 - len);
        memcpy(h, keyed, sizeof h);
        for (size_t b = 0; b < blocks; b++) {
            const int last = b + 1 == blocks;
            compress(h, scratch + 128 * b, 128 + (last ? (uint64_t)len : 128 * (uint64_t)(b + 1)), last);
        }
        /* the digest's first 8 bytes are h[0] little-endian; read them big-endian */
        const uint64_t digest = __builtin_bswap64(h[0]);
        w[i] = (int32_t)(digest % mod);
    }
    Py_END_ALLOW_THREADS
done:
    PyMem_Free(scratch);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&data);
    PyBuffer_Release(&key);
    PyBuffer_Release(&prefix);
    return out;
}

/* The value of each byte as a hex character (either case, as binascii takes), or 0x100 when it is not one:
 * filled once at import; a table lookup per character instead of branches. */
static uint16_t HEX_VALUE[256];

static void fill_hex_values(void) {
    for (int c = 0; c < 256; c++) {
        HEX_VALUE[c] = 0x100;
    }
    for (int c = 0; c < 10; c++) {
        HEX_VALUE['0' + c] = (uint16_t)c;
    }
    for (int c = 0; c < 6; c++) {
        HEX_VALUE['a' + c] = HEX_VALUE['A' + c] = (uint16_t)(10 + c);
    }
}

/* hex_words(offsets, data, start, n) -> bytes or None
 *
 * Why: the prepare stage stores each SHA-256 hex digest as four big-endian 64-bit words (k1..k4, see
 * identity/digests.py). Decoding with binascii, then byte-swapping and transposing in numpy, costs ~65 ns
 * per digest (0.65 s of CPU per 10M identifiers on every sync); one C pass costs a tenth of that.
 * offsets/data: the buffers of an Arrow string array (start: its offset, n: its length, no nulls). Returns
 * the words column after column (n native uint64 k1, then k2, k3, k4), or None when a value is not
 * exactly 64 hex characters: the caller then decodes the generic way (which names the error).
 */
static PyObject *hex_words(PyObject *self, PyObject *args) {
    Py_buffer offsets, data;
    Py_ssize_t start, n;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*nn", &offsets, &data, &start, &n)) {
        return NULL;
    }
    PyObject *out = NULL;
    if (start < 0 || n < 0 || (start + n + 1) > offsets.len / (Py_ssize_t)sizeof(int32_t)) {
        PyErr_SetString(PyExc_ValueError, "bad arguments: offsets");
        goto done;
    }
    const int32_t *offs = (const int32_t *)offsets.buf + start;
    if (n > 0 && (offs[0] < 0 || (Py_ssize_t)offs[n] > data.len)) {
        PyErr_SetString(PyExc_ValueError, "invalid string offsets");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)sizeof(uint64_t) * 4 * n);
    if (out == NULL) {
        goto done;
    }
    uint64_t *w = (uint64_t *)PyBytes_AS_STRING(out);
    const unsigned char *bytes = (const unsigned char *)data.buf;
    int ok = 1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n && ok; i++) {
        if (offs[i + 1] - offs[i] != 64) {
            ok = 0;
            break;
        }
        const unsigned char *p = bytes + offs[i];
        unsigned bad = 0;
        for (int k = 0; k < 4; k++) {
            uint64_t word = 0;
            for (int j = 0; j < 16; j++) {
                const unsigned v = HEX_VALUE[p[16 * k + j]];
                bad |= v;
                word = (word << 4) | (v & 15);
            }
            w[(Py_ssize_t)k * n + i] = word;
        }
        if (bad & 0x100) {
            ok = 0;
        }
    }
    Py_END_ALLOW_THREADS
    if (!ok) {
        Py_CLEAR(out);
        out = Py_NewRef(Py_None);
    }
done:
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&data);
    return out;
}

static PyMethodDef METHODS[] = {
    {"buckets", buckets, METH_VARARGS,
     "buckets(offsets, data, start, n, key, prefix, modulus) -> int32 bucket per value (bytes)."},
    {"hex_words", hex_words, METH_VARARGS,
     "hex_words(offsets, data, start, n) -> k1..k4 words column after column (bytes), or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "_groups", NULL, -1, METHODS, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__groups(void) {
    fill_hex_values();
    return PyModule_Create(&MODULE);
}
