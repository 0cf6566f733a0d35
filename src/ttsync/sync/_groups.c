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

/* ---- Sorted digest sets (ttsync.sync.sorted_diff) ----------------------------------------------------
 *
 * Why: a re-sync diffs ~10M digests against the ~10M of the snapshot. A hash join rebuilds a 10M-row table
 * every time (2.7 s of CPU at 10M); keeping the snapshot sorted by its words makes the diff one sort of the
 * new set plus one linear merge. The sort is an MSD radix scatter on the top bits of k1 (digests are uniform,
 * so buckets stay small and in cache), then each bucket sorted by all four words: insertion sort when small,
 * a merge sort otherwise (any input, even skewed made-up digests, stays O(n log n)).
 * A record is the four words and the row's index in the prepared file (40 bytes).
 */
typedef struct {
    uint64_t k[4];
    uint64_t idx;
} digest_rec;

static inline int rec_cmp(const digest_rec *a, const digest_rec *b) {
    for (int j = 0; j < 4; j++) {
        if (a->k[j] != b->k[j]) {
            return a->k[j] < b->k[j] ? -1 : 1;
        }
    }
    return 0;
}

static int get_u64(PyObject *obj, Py_buffer *view, Py_ssize_t n, int writable) {
    if (PyObject_GetBuffer(obj, view, writable ? PyBUF_WRITABLE : PyBUF_SIMPLE) < 0) {
        return -1;
    }
    if (view->len < n * (Py_ssize_t)sizeof(uint64_t)) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "buffer too short");
        return -1;
    }
    return 0;
}

/* radix_scatter(k1, k2, k3, k4, n, first_index, shift, next, records)
 *
 * k1..k4: n native uint64 each; next: uint64 per bucket (k1 >> shift), the next free record slot of each
 * bucket (advanced here; the caller fills it from a histogram); records: the output records. */
static PyObject *radix_scatter(PyObject *self, PyObject *args) {
    PyObject *objs[4], *next_obj, *rec_obj;
    Py_ssize_t n, first, shift;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOOnnnOO", &objs[0], &objs[1], &objs[2], &objs[3], &n, &first, &shift,
                          &next_obj, &rec_obj)) {
        return NULL;
    }
    if (n < 0 || first < 0 || shift < 0 || shift > 63) {
        PyErr_SetString(PyExc_ValueError, "bad arguments");
        return NULL;
    }
    Py_buffer cols[4], next, recs;
    int got = 0;
    PyObject *result = NULL;
    for (; got < 4; got++) {
        if (get_u64(objs[got], &cols[got], n, 0) < 0) {
            goto done;
        }
    }
    const Py_ssize_t buckets = (Py_ssize_t)(UINT64_C(1) << (64 - shift));
    if (get_u64(next_obj, &next, buckets, 1) < 0) {
        goto done;
    }
    if (PyObject_GetBuffer(rec_obj, &recs, PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&next);
        goto done;
    }
    const Py_ssize_t capacity = recs.len / (Py_ssize_t)sizeof(digest_rec);
    uint64_t *slot = (uint64_t *)next.buf;
    digest_rec *out = (digest_rec *)recs.buf;
    const uint64_t *a = cols[0].buf, *b = cols[1].buf, *c = cols[2].buf, *d = cols[3].buf;
    int ok = 1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        const uint64_t p = slot[a[i] >> shift]++;
        if (p >= (uint64_t)capacity) {
            ok = 0;
            break;
        }
        digest_rec *r = out + p;
        r->k[0] = a[i];
        r->k[1] = b[i];
        r->k[2] = c[i];
        r->k[3] = d[i];
        r->idx = (uint64_t)(first + i);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&next);
    PyBuffer_Release(&recs);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "bucket slots exceed the records buffer");
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    for (int j = 0; j < got; j++) {
        PyBuffer_Release(&cols[j]);
    }
    return result;
}

static void insertion_sort(digest_rec *r, size_t n) {
    for (size_t i = 1; i < n; i++) {
        digest_rec x = r[i];
        size_t j = i;
        while (j > 0 && rec_cmp(&x, &r[j - 1]) < 0) {
            r[j] = r[j - 1];
            j--;
        }
        r[j] = x;
    }
}

/* Sorts r[0..n) using tmp (room for n records); stable. */
static void merge_sort(digest_rec *r, digest_rec *tmp, size_t n) {
    if (n <= 24) {
        insertion_sort(r, n);
        return;
    }
    const size_t half = n / 2;
    merge_sort(r, tmp, half);
    merge_sort(r + half, tmp, n - half);
    if (rec_cmp(&r[half - 1], &r[half]) <= 0) {
        return;
    }
    memcpy(tmp, r, half * sizeof(digest_rec));
    size_t i = 0, j = half, k = 0;
    while (i < half && j < n) {
        r[k++] = rec_cmp(&r[j], &tmp[i]) < 0 ? r[j++] : tmp[i++];
    }
    while (i < half) {
        r[k++] = tmp[i++];
    }
}

/* sort_buckets(records, starts, buckets): sort each bucket records[starts[b]:starts[b + 1]] by its words. */
static PyObject *sort_buckets(PyObject *self, PyObject *args) {
    PyObject *rec_obj, *starts_obj;
    Py_ssize_t buckets;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOn", &rec_obj, &starts_obj, &buckets)) {
        return NULL;
    }
    if (buckets < 0) {
        PyErr_SetString(PyExc_ValueError, "bad arguments");
        return NULL;
    }
    Py_buffer recs, starts;
    if (PyObject_GetBuffer(rec_obj, &recs, PyBUF_WRITABLE) < 0) {
        return NULL;
    }
    if (get_u64(starts_obj, &starts, buckets + 1, 0) < 0) {
        PyBuffer_Release(&recs);
        return NULL;
    }
    const uint64_t *s = starts.buf;
    const uint64_t total = (uint64_t)(recs.len / (Py_ssize_t)sizeof(digest_rec));
    uint64_t largest = 0;
    for (Py_ssize_t b = 0; b < buckets; b++) {
        if (s[b] > s[b + 1] || s[b + 1] > total) {
            PyBuffer_Release(&recs);
            PyBuffer_Release(&starts);
            PyErr_SetString(PyExc_ValueError, "bad bucket starts");
            return NULL;
        }
        if (s[b + 1] - s[b] > largest) {
            largest = s[b + 1] - s[b];
        }
    }
    digest_rec *tmp = PyMem_RawMalloc((size_t)(largest / 2 + 1) * sizeof(digest_rec));
    if (tmp == NULL) {
        PyBuffer_Release(&recs);
        PyBuffer_Release(&starts);
        return PyErr_NoMemory();
    }
    digest_rec *r = (digest_rec *)recs.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t b = 0; b < buckets; b++) {
        merge_sort(r + s[b], tmp, (size_t)(s[b + 1] - s[b]));
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(tmp);
    PyBuffer_Release(&recs);
    PyBuffer_Release(&starts);
    Py_RETURN_NONE;
}

/* Growable output of uint64 values. */
typedef struct {
    uint64_t *v;
    size_t len, cap;
} u64_vec;

static int vec_push(u64_vec *x, uint64_t value) {
    if (x->len == x->cap) {
        const size_t cap = x->cap ? 2 * x->cap : 1024;
        uint64_t *grown = PyMem_RawRealloc(x->v, cap * sizeof(uint64_t));
        if (grown == NULL) {
            return -1;
        }
        x->v = grown;
        x->cap = cap;
    }
    x->v[x->len++] = value;
    return 0;
}

/* merge_sorted(records, n, state, s1, s2, s3, s4, m, final) -> (added, removed) or None
 *
 * One step of a merge of the sorted new set (records[0..n)) with a chunk of the sorted snapshot (s1..s4, m
 * rows; the chunks in order). state (6 writable uint64): the next record, whether a snapshot key was seen,
 * and that last key; it carries the merge from chunk to chunk. added: positions of new records not in the
 * snapshot (every record of an identifier the new set holds twice); removed: the words (4 per row) of
 * snapshot identifiers not in the new set, each once. `final`: also add every record left. None: the chunk
 * is not sorted after what came before (a snapshot written unsorted), nothing is changed. */
static PyObject *merge_sorted(PyObject *self, PyObject *args) {
    PyObject *rec_obj, *state_obj, *objs[4];
    Py_ssize_t n, m;
    int final;
    (void)self;
    if (!PyArg_ParseTuple(args, "OnOOOOOnp", &rec_obj, &n, &state_obj, &objs[0], &objs[1], &objs[2], &objs[3],
                          &m, &final)) {
        return NULL;
    }
    if (n < 0 || m < 0) {
        PyErr_SetString(PyExc_ValueError, "bad arguments");
        return NULL;
    }
    Py_buffer recs, state, cols[4];
    int got = 0;
    PyObject *result = NULL;
    if (PyObject_GetBuffer(rec_obj, &recs, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (recs.len < n * (Py_ssize_t)sizeof(digest_rec)) {
        PyBuffer_Release(&recs);
        PyErr_SetString(PyExc_ValueError, "records buffer too short");
        return NULL;
    }
    if (get_u64(state_obj, &state, 6, 1) < 0) {
        PyBuffer_Release(&recs);
        return NULL;
    }
    for (; got < 4; got++) {
        if (get_u64(objs[got], &cols[got], m, 0) < 0) {
            goto done;
        }
    }
    const digest_rec *r = recs.buf;
    uint64_t *st = state.buf;
    const uint64_t *s[4] = {cols[0].buf, cols[1].buf, cols[2].buf, cols[3].buf};
    /* Check the chunk's order first (a linear pass), so an unsorted snapshot changes nothing. */
    int sorted = 1;
    digest_rec prev = {{st[2], st[3], st[4], st[5]}, 0};
    int have_prev = st[1] != 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t j = 0; j < m && sorted; j++) {
        digest_rec cur = {{s[0][j], s[1][j], s[2][j], s[3][j]}, 0};
        if (have_prev && rec_cmp(&cur, &prev) < 0) {
            sorted = 0;
        }
        prev = cur;
        have_prev = 1;
    }
    Py_END_ALLOW_THREADS
    if (!sorted) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    u64_vec added = {0}, removed = {0};
    int failed = 0;
    uint64_t i = st[0];
    int have_last = st[1] != 0;
    digest_rec last = {{st[2], st[3], st[4], st[5]}, 0};
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t j = 0; j < m && !failed; j++) {
        digest_rec key = {{s[0][j], s[1][j], s[2][j], s[3][j]}, 0};
        if (have_last && rec_cmp(&key, &last) == 0) {
            continue; /* the snapshot holds it twice: decided at its first row */
        }
        while (i < (uint64_t)n && rec_cmp(&r[i], &key) < 0 && !failed) {
            failed = vec_push(&added, i++);
        }
        if (i < (uint64_t)n && rec_cmp(&r[i], &key) == 0) {
            while (i < (uint64_t)n && rec_cmp(&r[i], &key) == 0) {
                i++;
            }
        } else {
            for (int w = 0; w < 4 && !failed; w++) {
                failed = vec_push(&removed, key.k[w]);
            }
        }
        last = key;
        have_last = 1;
    }
    while (final && i < (uint64_t)n && !failed) {
        failed = vec_push(&added, i++);
    }
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
    } else {
        st[0] = i;
        st[1] = (uint64_t)have_last;
        for (int w = 0; w < 4; w++) {
            st[2 + w] = last.k[w];
        }
        /* y# of a NULL pointer gives None: empty outputs point at "" instead */
        result = Py_BuildValue("(y#y#)", added.v ? (const char *)added.v : "",
                               (Py_ssize_t)(added.len * sizeof(uint64_t)), removed.v ? (const char *)removed.v : "",
                               (Py_ssize_t)(removed.len * sizeof(uint64_t)));
    }
    PyMem_RawFree(added.v);
    PyMem_RawFree(removed.v);
done:
    for (int j = 0; j < got; j++) {
        PyBuffer_Release(&cols[j]);
    }
    PyBuffer_Release(&state);
    PyBuffer_Release(&recs);
    return result;
}

/* distinct_sorted(records, n) -> the number of distinct words among sorted records. */
static PyObject *distinct_sorted(PyObject *self, PyObject *args) {
    PyObject *rec_obj;
    Py_ssize_t n;
    (void)self;
    if (!PyArg_ParseTuple(args, "On", &rec_obj, &n)) {
        return NULL;
    }
    Py_buffer recs;
    if (PyObject_GetBuffer(rec_obj, &recs, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (n < 0 || recs.len < n * (Py_ssize_t)sizeof(digest_rec)) {
        PyBuffer_Release(&recs);
        PyErr_SetString(PyExc_ValueError, "records buffer too short");
        return NULL;
    }
    const digest_rec *r = recs.buf;
    Py_ssize_t count = n > 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 1; i < n; i++) {
        count += rec_cmp(&r[i - 1], &r[i]) != 0;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&recs);
    return PyLong_FromSsize_t(count);
}

static PyMethodDef METHODS[] = {
    {"buckets", buckets, METH_VARARGS,
     "buckets(offsets, data, start, n, key, prefix, modulus) -> int32 bucket per value (bytes)."},
    {"hex_words", hex_words, METH_VARARGS,
     "hex_words(offsets, data, start, n) -> k1..k4 words column after column (bytes), or None."},
    {"radix_scatter", radix_scatter, METH_VARARGS,
     "radix_scatter(k1, k2, k3, k4, n, first_index, shift, next, records): digest records into buckets."},
    {"sort_buckets", sort_buckets, METH_VARARGS, "sort_buckets(records, starts, buckets): sort each bucket."},
    {"merge_sorted", merge_sorted, METH_VARARGS,
     "merge_sorted(records, n, state, s1, s2, s3, s4, m, final) -> (added, removed) or None."},
    {"distinct_sorted", distinct_sorted, METH_VARARGS, "distinct_sorted(records, n) -> distinct digests."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "_groups", NULL, -1, METHODS, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__groups(void) {
    fill_hex_values();
    return PyModule_Create(&MODULE);
}
