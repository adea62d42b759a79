# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# distutils: language = c++
"""Compiled text kernels: documents (``str``) to sparse bag-of-words counts, for the default token pattern.

The contract, shared with the pure-Python fallback ``pyfastnn.text._bow_py`` (same names, same results):

``count_new(docs, decode, lowercase, stop_words, min_n, max_n, n_threads)``
    Learn the vocabulary: ``(terms, indptr, indices, counts)`` with ``terms`` the distinct n-grams sorted as
    Python sorts ``str``, and rows in canonical CSR form (column indices into ``terms``, sorted, no repeats).
``count_fixed(docs, decode, lowercase, stop_words, min_n, max_n, table, n_threads)``
    Counts over a fixed vocabulary ``table = make_table({term: column})``: ``(indptr, indices, counts)``.
``hash_counts(docs, decode, lowercase, stop_words, min_n, max_n, n_features, n_threads)``
    Counts at column ``|murmurhash3_32(utf8(term))| mod n_features``: ``(indptr, indices, counts)``.
``murmurhash3_32(key, seed=0)``
    Signed 32-bit MurmurHash3 (x86_32) of a ``str`` (its UTF-8 bytes) or ``bytes``.
``text_columns(text, delimiter, ncols, tcol, lcol)``
    Two cells of every record of an unquoted delimited file's text (``pf.datasets.load_text``):
    ``(texts, labels, lines, bad_line, bad_columns)``; only those two cells become ``str`` objects.

``indptr`` is int64, ``indices`` int32, ``counts`` int64. ``docs`` is a list; an item that is not exactly
``str`` goes through ``decode(item, index)`` (bytes, errors naming the index). Tokens are scikit-learn's
default ``(?u)\\b\\w\\w+\\b`` after ``str.lower()``: maximal runs of two or more characters for which ``re``'s
``\\w`` holds, which CPython defines as ``Py_UNICODE_ISALNUM(ch) || ch == '_'``. An n-gram is its tokens
joined by one space, after stop words are removed.

How the loop stays in C: each document's buffer is read in place (``PyUnicode_KIND`` / ``PyUnicode_DATA``,
one specialisation per character width; ASCII documents by a loop without a branch per character). Latin-1
documents (the 1-byte kind) are lower-cased on the fly with a 256-entry table; wider ones by one
``str.lower()`` call beforehand (it can change the length: 'İ'.lower() has two characters). A document's kept
tokens are written as UTF-8 into one buffer, separated by single spaces, so every n-gram is a contiguous slice
of it. The slices are hashed, and looked up in an open-addressing table over the UTF-8 bytes whose slots hold
each term's first 8 bytes and its count in the current document (one cache line per n-gram, prefetched a few
n-grams ahead); no Python object is made per token. A row's columns are put in order with a bitmap over the
columns (or a counting pass on their top bits, when there are many columns), not a comparison sort. The GIL is
released for all of that; documents are split into contiguous ranges, one per thread, each thread with its own
table while the vocabulary is being learned (merged afterwards: the final feature order is the sorted term
order, so it does not depend on the split). The workers' vectors become the output arrays without a copy.
"""

cimport cython
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memchr, memcmp, memcpy, memmove
from libcpp.algorithm cimport sort as std_sort
from libcpp.vector cimport vector

import threading

import numpy as np

cdef extern from "Python.h":
    bint PyUnicode_CheckExact(object o)
    bint PyUnicode_Check(object o)
    int PyUnicode_KIND(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    bint PyUnicode_IS_ASCII(object o)
    bint Py_UNICODE_ISALNUM(Py_UCS4 ch) nogil
    object PyUnicode_DecodeUTF8(const char* s, Py_ssize_t size, const char* errors)
    const char* PyUnicode_AsUTF8AndSize(object o, Py_ssize_t* size) except NULL

cdef extern from *:
    """
    #include <algorithm>
    #include <cstring>
    #include <cstdint>

    /* Python < 3.12 may hold a str in the legacy wide representation until it is made ready. */
    static inline int pyfastnn_unicode_ready(PyObject *o) {
    #if PY_VERSION_HEX < 0x030C0000
        return PyUnicode_READY(o);
    #else
        (void)o;
        return 0;
    #endif
    }

    /* The first min(n, 8) bytes at p, zero-padded, as one integer; p must have 8 readable bytes. */
    static inline uint64_t pyfastnn_head(const char *p, int64_t n) {
        uint64_t w;
        std::memcpy(&w, p, 8);
        if (n >= 8) return w;
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        return w & ~(~(uint64_t)0 >> (8 * n));
    #else
        return w & (((uint64_t)1 << (8 * n)) - 1);
    #endif
    }

    /* The hash of the vocabulary tables (MurmurHash3 is only for the hashing vectorizer): 8 bytes at a time,
       multiply-xorshift mixing; p must have 8 readable bytes past the key's end (the tail word is masked). */
    static inline uint32_t pyfastnn_key_hash(const char *p, int64_t n) {
        const uint64_t k = 0x9E3779B97F4A7C15ull;
        uint64_t h = (uint64_t)n * k, w;
        int64_t i = 0;
        for (; i + 8 <= n; i += 8) {
            std::memcpy(&w, p + i, 8);
            h = (h ^ w) * k;
            h ^= h >> 29;
        }
        if (i < n) {
            h = (h ^ pyfastnn_head(p + i, n - i)) * k;
            h ^= h >> 29;
        }
        h *= 0xBF58476D1CE4E5B9ull;
        return (uint32_t)(h >> 32);
    }

    /* Ask for the cache line at p ahead of its use (a no-op where the compiler has no such builtin). */
    static inline void pyfastnn_prefetch(const void *p) {
    #if defined(__GNUC__) || defined(__clang__)
        __builtin_prefetch(p, 1, 3);
    #else
        (void)p;
    #endif
    }

    /* Index of the lowest set bit of x (x != 0). */
    #if defined(_MSC_VER)
    #include <intrin.h>
    static inline int pyfastnn_ctz64(uint64_t x) { unsigned long i; _BitScanForward64(&i, x); return (int)i; }
    #else
    static inline int pyfastnn_ctz64(uint64_t x) { return __builtin_ctzll(x); }
    #endif

    /* Term ids ordered by their UTF-8 bytes. Bytewise order of UTF-8 is code-point order, which is the order
       of Python's str comparison, so this is sorted() of the terms. */
    static void pyfastnn_sort_terms(int32_t *ids, int64_t n, const char *arena, const int64_t *offsets) {
        std::sort(ids, ids + n, [arena, offsets](int32_t a, int32_t b) {
            int64_t la = offsets[a + 1] - offsets[a], lb = offsets[b + 1] - offsets[b];
            int c = std::memcmp(arena + offsets[a], arena + offsets[b], (size_t)(la < lb ? la : lb));
            return c < 0 || (c == 0 && la < lb);
        });
    }
    """
    int pyfastnn_unicode_ready(object o) except -1
    uint64_t pyfastnn_head(const char* p, int64_t n) nogil
    int pyfastnn_ctz64(uint64_t x) nogil
    void pyfastnn_prefetch(const void* p) nogil
    uint32_t pyfastnn_key_hash(const char* p, int64_t n) nogil
    void pyfastnn_sort_terms(int32_t* ids, int64_t n, const char* arena, const int64_t* offsets) nogil

ctypedef fused char_t:
    uint8_t
    uint16_t
    uint32_t

# What each worker does with an n-gram.
cdef enum:
    MODE_LEARN = 0   # add to the worker's own vocabulary, count per document
    MODE_FIXED = 1   # look up in a shared read-only vocabulary, skip unknown n-grams
    MODE_HASH = 2    # column = |murmurhash3| mod n_features

# How many n-grams ahead the table slot is prefetched.
cdef Py_ssize_t _PREFETCH_AHEAD = 8

# Rows are put in column order with a bitmap over the columns up to this many columns (its counts, 8 bytes per
# column, then stay in cache), with a comparison sort above.
cdef int64_t _BITMAP_MAX_COLUMNS = 1 << 18

# Each thread gets at least this many characters: starting a thread for less costs more than it saves.
cdef Py_ssize_t _MIN_CHARS_PER_THREAD = 1 << 16

# Latin-1 tables, filled at import from CPython itself. _KEEP1[c] is c if c is re's \w, else 0 (NUL is not
# \w); _FOLD1[c] is the same for str.lower() of c. Every Latin-1 character lowers to one Latin-1 character;
# _LATIN1_FOLD is cleared (and str.lower() used instead) should a Python ever differ.
cdef uint8_t _KEEP1[256]
cdef uint8_t _FOLD1[256]
cdef bint _LATIN1_FOLD = True
# For ASCII documents: the byte to write (the character, lower-cased for _ASCII_FOLD, or a space for a
# non-word character) in the low 8 bits, and 0x100 for a word character.
cdef uint16_t _ASCII_KEEP[128]
cdef uint16_t _ASCII_FOLD[128]


def _init_tables():
    global _LATIN1_FOLD
    cdef int c, low
    for c in range(256):
        _KEEP1[c] = c if (chr(c).isalnum() or c == 0x5F) else 0
    for c in range(256):
        lowered = chr(c).lower()
        if len(lowered) == 1 and ord(lowered) < 256:
            low = ord(lowered)
            _FOLD1[c] = _KEEP1[low]
        else:
            _FOLD1[c] = 0
            _LATIN1_FOLD = False
    for c in range(128):
        _ASCII_KEEP[c] = (0x100 | _KEEP1[c]) if _KEEP1[c] else 0x20
        _ASCII_FOLD[c] = (0x100 | _FOLD1[c]) if _FOLD1[c] else 0x20


_init_tables()


cdef inline bint _is_word(uint32_t c) noexcept nogil:
    if c < 256:
        return _KEEP1[c] != 0
    return Py_UNICODE_ISALNUM(c)


cdef inline uint32_t _rotl32(uint32_t x, int r) noexcept nogil:
    return (x << r) | (x >> (32 - r))


cdef inline uint32_t _murmur3(const uint8_t* key, Py_ssize_t n, uint32_t seed) noexcept nogil:
    """MurmurHash3_x86_32: 4-byte little-endian blocks, then the tail, then the finalizer."""
    cdef uint32_t c1 = 0xCC9E2D51u, c2 = 0x1B873593u
    cdef uint32_t h = seed, k
    cdef Py_ssize_t nblocks = n >> 2, i
    cdef const uint8_t* p
    for i in range(nblocks):
        p = key + 4 * i
        k = <uint32_t>p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)
        k *= c1
        k = _rotl32(k, 15)
        k *= c2
        h ^= k
        h = _rotl32(h, 13)
        h = h * 5u + 0xE6546B64u
    p = key + 4 * nblocks
    k = 0
    i = n & 3
    if i == 3:
        k ^= <uint32_t>p[2] << 16
    if i >= 2:
        k ^= <uint32_t>p[1] << 8
    if i >= 1:
        k ^= <uint32_t>p[0]
        k *= c1
        k = _rotl32(k, 15)
        k *= c2
        h ^= k
    h ^= <uint32_t>n
    h ^= h >> 16
    h *= 0x85EBCA6Bu
    h ^= h >> 13
    h *= 0xC2B2AE35u
    h ^= h >> 16
    return h


def murmurhash3_32(key, unsigned int seed=0):
    """Signed 32-bit MurmurHash3 (x86_32) of ``key``: a ``str`` (hashed as UTF-8) or ``bytes``."""
    cdef const char* p
    cdef Py_ssize_t n
    if isinstance(key, str):
        p = PyUnicode_AsUTF8AndSize(key, &n)
    elif isinstance(key, bytes):
        p = <bytes>key
        n = len(<bytes>key)
    else:
        raise TypeError(f"key must be str or bytes, got {type(key).__name__}")
    return <int32_t>_murmur3(<const uint8_t*>p, n, seed)


cdef inline uint32_t _column(uint32_t h, uint32_t n_features, uint32_t mask) noexcept nogil:
    """|h| mod n_features for h read as a signed 32-bit int, with |-2**31| = 2**31 (scikit-learn's rule);
    ``mask`` is n_features - 1 when that is a power of two (no division then), else 0."""
    cdef int32_t s = <int32_t>h
    cdef uint32_t a
    if s == -2147483647 - 1:
        a = 2147483648u
    elif s < 0:
        a = <uint32_t>(-s)
    else:
        a = <uint32_t>s
    if mask:
        return a & mask
    return a % n_features


# ----------------------------------------------------------------------------------------------------------
# A set of byte strings (UTF-8 terms) with an int32 id each: open addressing, linear probing.


cdef struct Slot:
    uint64_t head     # the term's first 8 bytes, zero-padded (UTF-8 of word characters has no zero byte)
    uint32_t tag      # high 24 bits of the hash, then min(length, 255)
    int32_t id        # -1: empty
    int64_t count     # occurrences in the current document (learning only): next to the key, so counting
                      # costs no second cache miss


cdef inline uint32_t _tag(uint32_t h, Py_ssize_t klen) noexcept nogil:
    return (h & 0xFFFFFF00u) | <uint32_t>(klen if klen < 255 else 255)


@cython.final
cdef class _Table:
    """Terms as UTF-8 bytes in one arena; ``values[id]`` is the column of term ``id`` (or -1).

    A slot holds the first 8 bytes of its term, so a term of up to 8 bytes (most words) is matched without
    reading the arena. Every key passed in must have 8 readable bytes past its end (the callers' buffers keep
    that much slack), so its head is one 8-byte load.
    """

    cdef vector[Slot] slots
    cdef vector[uint64_t] seen      # learning: the slots counted in the current document
    cdef uint64_t mask
    cdef vector[char] arena         # 8 spare bytes at the end, so stored terms are valid keys too
    cdef vector[int64_t] offsets    # term id occupies arena[offsets[id]:offsets[id + 1]]
    cdef vector[uint32_t] hashes
    cdef vector[int32_t] values
    cdef int32_t n

    def __cinit__(self):
        cdef Slot empty
        empty.head = 0
        empty.tag = 0
        empty.id = -1
        empty.count = 0
        self.slots.assign(64, empty)
        self.mask = 63
        self.offsets.push_back(0)
        self.arena.resize(8)
        self.n = 0

    def __len__(self):
        return self.n

    cdef int64_t n_columns(self):
        """1 + the largest column (0 when empty)."""
        cdef int64_t top = -1
        cdef size_t k
        for k in range(self.values.size()):
            if self.values[k] > top:
                top = self.values[k]
        return top + 1

    cdef inline void prefetch(self, uint32_t h) noexcept nogil:
        pyfastnn_prefetch(self.slots.data() + (h & self.mask))

    cdef inline bint _same_tail(self, int32_t tid, const char* key, Py_ssize_t klen) noexcept nogil:
        """Whether a long term (klen > 8) whose head and tag match is the key."""
        cdef int64_t off = self.offsets[tid]
        if self.offsets[tid + 1] - off != klen:
            return False
        if klen <= 16:  # one more masked 8-byte word (the arena, like the keys, has 8 readable spare bytes)
            return pyfastnn_head(self.arena.data() + off + 8, klen - 8) == pyfastnn_head(key + 8, klen - 8)
        return memcmp(self.arena.data() + off + 8, key + 8, klen - 8) == 0

    cdef inline int32_t find(self, const char* key, Py_ssize_t klen, uint32_t h) noexcept nogil:
        cdef uint64_t i = h & self.mask
        cdef uint64_t head = pyfastnn_head(key, klen)
        cdef uint32_t tag = _tag(h, klen)
        cdef const Slot* sl
        while True:
            sl = self.slots.data() + i
            if sl.id < 0:
                return -1
            if sl.tag == tag and sl.head == head and (klen <= 8 or self._same_tail(sl.id, key, klen)):
                return sl.id
            i = (i + 1) & self.mask

    cdef int32_t insert(self, const char* key, Py_ssize_t klen, uint32_t h) except -1 nogil:
        """The id of the term, added (with value = id) if new."""
        return self.slots[self._slot_of(key, klen, h)].id

    cdef inline int count(self, const char* key, Py_ssize_t klen, uint32_t h) except -1 nogil:
        """One more occurrence of the term in the current document (added to the table if new)."""
        cdef uint64_t i = self._slot_of(key, klen, h)
        cdef Slot* sl = self.slots.data() + i
        if sl.count == 0:
            self.seen.push_back(i)
        sl.count += 1
        return 0

    cdef int flush(self, vector[int32_t]& ids, vector[int64_t]& counts) except -1 nogil:
        """Append the current document's (term id, count) entries and start the next document."""
        cdef Slot* sl
        cdef size_t k
        for k in range(self.seen.size()):
            sl = self.slots.data() + self.seen[k]
            ids.push_back(sl.id)
            counts.push_back(sl.count)
            sl.count = 0
        self.seen.clear()
        return 0

    cdef uint64_t _slot_of(self, const char* key, Py_ssize_t klen,
                           uint32_t h) except? 0xFFFFFFFFFFFFFFFF nogil:
        """The index of the term's slot, the term added (with value = id) if new."""
        cdef uint64_t i = h & self.mask
        cdef uint64_t head = pyfastnn_head(key, klen)
        cdef uint32_t tag = _tag(h, klen)
        cdef Slot* sl
        cdef int32_t tid
        cdef int64_t off
        while True:
            sl = self.slots.data() + i
            if sl.id < 0:
                break
            if sl.tag == tag and sl.head == head and (klen <= 8 or self._same_tail(sl.id, key, klen)):
                return i
            i = (i + 1) & self.mask
        if self.n >= 2147483646:
            with gil:
                raise ValueError("more than 2**31 - 2 distinct terms: the vocabulary does not fit int32")
        tid = self.n
        sl.head = head
        sl.tag = tag
        sl.id = tid
        sl.count = 0
        off = self.offsets[tid]
        self.arena.resize(off + klen + 8)
        memcpy(self.arena.data() + off, key, klen)
        self.offsets.push_back(off + klen)
        self.hashes.push_back(h)
        self.values.push_back(tid)
        self.n += 1
        if <uint64_t>self.n * 2 > self.mask + 1:
            return self._grow(tid)
        return i

    cdef uint64_t _grow(self, int32_t keep) except? 0xFFFFFFFFFFFFFFFF nogil:
        """Double the slots; returns the new slot of term ``keep``. The current document's counts move with
        their slots, and ``seen`` is renumbered."""
        cdef vector[Slot] old
        old.swap(self.slots)
        cdef uint64_t cap = (self.mask + 1) * 2, i, j, kept = 0
        cdef size_t k
        cdef Slot empty
        empty.head = 0
        empty.tag = 0
        empty.id = -1
        empty.count = 0
        self.slots.assign(cap, empty)
        self.mask = cap - 1
        for i in range(old.size()):
            if old[i].id >= 0:
                j = self.hashes[old[i].id] & self.mask
                while self.slots[j].id >= 0:
                    j = (j + 1) & self.mask
                self.slots[j] = old[i]
                old[i].head = j            # the old slot remembers where its term went, for seen below
                if old[i].id == keep:
                    kept = j
        for k in range(self.seen.size()):
            self.seen[k] = old[self.seen[k]].head
        return kept

    cdef int add_str(self, object term, int32_t value) except -1:
        """Add a str term with a given column. A term with no UTF-8 form (lone surrogates) is left out: no
        token holds a surrogate (they are not \\w), so it could never match."""
        cdef Py_ssize_t n
        cdef const char* p
        try:
            p = PyUnicode_AsUTF8AndSize(term, &n)
        except UnicodeEncodeError:
            return 0
        cdef vector[char] padded    # the key with the 8 readable spare bytes insert() relies on
        padded.resize(n + 8)
        memcpy(padded.data(), p, n)
        cdef int32_t tid = self.insert(padded.data(), n, pyfastnn_key_hash(padded.data(), n))
        self.values[tid] = value
        return 0


def make_table(mapping):
    """The lookup table of a fixed vocabulary ``{term: column}``; terms that are not ``str`` never match."""
    cdef _Table t = _Table()
    for term, col in mapping.items():
        if isinstance(term, str):
            t.add_str(term, int(col))
    return t


cdef _Table _stop_table(stop_words):
    if not stop_words:
        return None
    cdef _Table t = _Table()
    for w in stop_words:
        if isinstance(w, str):
            t.add_str(w, 0)
    return t


# ----------------------------------------------------------------------------------------------------------
# The documents, made ready under the GIL: decoded, lower-cased where C cannot do it, and kept alive.


cdef struct DocRef:
    const void* data
    Py_ssize_t length
    int kind
    bint fold          # lower-case in the loop with the Latin-1 table
    bint ascii         # every character < 128 (then each character is one UTF-8 byte)


@cython.final
cdef class _Docs:
    cdef list keep
    cdef vector[DocRef] refs
    cdef Py_ssize_t total_chars

    def __cinit__(self, list docs, decode, bint lowercase):
        cdef Py_ssize_t i, n = len(docs)
        cdef DocRef r
        cdef bint exact
        self.keep = [None] * n
        self.refs.resize(n)
        self.total_chars = 0
        for i in range(n):
            doc = docs[i]
            exact = PyUnicode_CheckExact(doc)
            if not exact:
                doc = decode(doc, i)
                if lowercase:
                    doc = doc.lower()
                if not PyUnicode_Check(doc):
                    raise TypeError(f"document {i}: lower() returned {type(doc).__name__}, expected str")
            pyfastnn_unicode_ready(doc)
            r.kind = PyUnicode_KIND(doc)
            r.fold = False
            if exact and lowercase:
                if r.kind == 1 and _LATIN1_FOLD:
                    r.fold = True
                else:
                    doc = doc.lower()
                    pyfastnn_unicode_ready(doc)
                    r.kind = PyUnicode_KIND(doc)
            r.data = PyUnicode_DATA(doc)
            r.length = PyUnicode_GET_LENGTH(doc)
            r.ascii = PyUnicode_IS_ASCII(doc)
            self.keep[i] = doc
            self.refs[i] = r
            self.total_chars += r.length

    cdef list chunks(self, int n_threads):
        """Contiguous [begin, end) ranges of documents, one per thread, with about equal characters."""
        cdef Py_ssize_t n = self.refs.size(), i, begin = 0, acc = 0, target
        cdef Py_ssize_t t = min(<Py_ssize_t>n_threads, self.total_chars // _MIN_CHARS_PER_THREAD, n)
        if t <= 1:
            return [(0, n)]
        out = []
        target = (self.total_chars + n) // t + 1
        for i in range(n - 1):  # the last document always ends the last range, which is never empty
            acc += self.refs[i].length + 1
            if acc >= target and len(out) < t - 1:
                out.append((begin, i + 1))
                begin = i + 1
                acc = 0
        out.append((begin, n))
        return out


# ----------------------------------------------------------------------------------------------------------
# One thread's work over a range of documents.


@cython.final
cdef class _Worker:
    cdef _Docs docs
    cdef Py_ssize_t begin, end
    cdef int mode, min_n, max_n
    cdef uint32_t n_features, feature_mask
    cdef _Table stop
    cdef _Table vocab            # MODE_LEARN: this worker's vocabulary; MODE_FIXED: the shared table
    cdef vector[uint8_t] buf     # UTF-8 of the document's kept tokens, each followed by one space
    cdef vector[int64_t] tok_start
    cdef vector[int64_t] tok_end
    cdef vector[int64_t] bounds  # ASCII tokenizer: token starts and ends, alternating
    cdef vector[int64_t] gram_start   # the document's n-grams: byte ranges in buf and hashes
    cdef vector[int64_t] gram_len
    cdef vector[uint32_t] gram_hash
    cdef vector[uint32_t] raw    # MODE_FIXED / MODE_HASH: the document's columns, with repeats
    cdef vector[uint32_t] raw2
    cdef vector[uint32_t] bucket
    cdef int col_bits            # columns are < 2**col_bits
    cdef vector[int32_t] ids     # the entries of all rows: MODE_LEARN local term ids in first-seen order,
    cdef vector[int64_t] counts  # otherwise sorted columns
    cdef vector[int64_t] row_nnz
    cdef vector[uint64_t] packed
    # Ordering a row without a comparison sort: bit c of bits0 marks column c, bit w of bits1 marks a non-zero
    # bits0[w]; cnt[c] is the column's count. Emitting walks the set bits in order and clears them.
    cdef bint use_bits
    cdef vector[uint64_t] bits0
    cdef vector[uint64_t] bits1
    cdef vector[int64_t] cnt
    cdef Py_ssize_t n_uniq, lo1, hi1

    def __cinit__(self, _Docs docs, Py_ssize_t begin, Py_ssize_t end, int mode, int min_n, int max_n,
                  _Table stop, _Table vocab, uint32_t n_features, int64_t n_columns):
        self.docs = docs
        self.begin = begin
        self.end = end
        self.mode = mode
        self.min_n = min_n
        self.max_n = max_n
        self.stop = stop
        self.vocab = vocab if vocab is not None else _Table()
        self.n_features = n_features
        # n_features - 1 when n_features is a power of two; mask 0 means "divide".
        self.feature_mask = n_features - 1 if n_features > 1 and (n_features & (n_features - 1)) == 0 else 0
        self.use_bits = False
        self.col_bits = 0
        while self.col_bits < 32 and (<int64_t>1 << self.col_bits) < n_columns:
            self.col_bits += 1
        if mode != MODE_LEARN:   # learning sets up the bitmap once the vocabulary size is known
            self._bits_init(n_columns)

    cdef int _bits_init(self, int64_t n_columns) except -1:
        self.use_bits = 0 < n_columns <= _BITMAP_MAX_COLUMNS
        if self.use_bits:
            self.bits0.assign((n_columns + 63) // 64, 0)
            self.bits1.assign((self.bits0.size() + 63) // 64, 0)
            self.cnt.assign(n_columns, 0)
            self.n_uniq = 0
            self.lo1 = self.bits1.size()
            self.hi1 = -1
        return 0

    cdef inline void _bits_add(self, uint32_t col, int64_t count) noexcept nogil:
        cdef Py_ssize_t w0 = col >> 6, w1 = col >> 12
        if self.cnt[col] == 0:
            self.bits0[w0] |= (<uint64_t>1) << (col & 63)
            self.bits1[w1] |= (<uint64_t>1) << (w0 & 63)
            self.n_uniq += 1
            if w1 < self.lo1:
                self.lo1 = w1
            if w1 > self.hi1:
                self.hi1 = w1
        self.cnt[col] += count

    cdef Py_ssize_t _bits_emit(self, int32_t* out_idx, int64_t* out_cnt) noexcept nogil:
        """Write the row's n_uniq (column, count) entries in column order; clear the row."""
        cdef Py_ssize_t w1, w0, k = 0
        cdef uint64_t x1, x0
        cdef uint32_t col
        for w1 in range(self.lo1, self.hi1 + 1):
            x1 = self.bits1[w1]
            self.bits1[w1] = 0
            while x1:
                w0 = (w1 << 6) | pyfastnn_ctz64(x1)
                x1 &= x1 - 1
                x0 = self.bits0[w0]
                self.bits0[w0] = 0
                while x0:
                    col = <uint32_t>((w0 << 6) | pyfastnn_ctz64(x0))
                    x0 &= x0 - 1
                    out_idx[k] = <int32_t>col
                    out_cnt[k] = self.cnt[col]
                    self.cnt[col] = 0
                    k += 1
        self.n_uniq = 0
        self.lo1 = self.bits1.size()
        self.hi1 = -1
        return k

    def run(self):
        with nogil:
            self._run()

    cdef inline bint _is_stop(self, const uint8_t* token, Py_ssize_t n) noexcept nogil:
        return self.stop.find(<const char*>token, n, pyfastnn_key_hash(<const char*>token, n)) >= 0

    cdef int _run(self) except -1 nogil:
        cdef Py_ssize_t d, ntok, maxbytes
        cdef const DocRef* r
        cdef Py_ssize_t chars = 0
        if self.begin == 0:
            # The first worker's vectors become the output, the other workers' rows appended: room for all.
            chars = self.docs.total_chars
        else:
            for d in range(self.begin, self.end):
                chars += self.docs.refs[d].length
        # Room for the entries of typical text (a word and its separator take 5+ characters), reserved up
        # front so the vectors are not copied as they grow; untouched reserved pages cost nothing.
        # Capped (at 3 GiB), so a huge corpus does not ask for more address space than a strict system grants.
        cdef Py_ssize_t room = min(chars // 5 * (self.max_n - self.min_n + 1) + 16, <Py_ssize_t>1 << 28)
        self.row_nnz.reserve(self.end - self.begin)
        self.ids.reserve(room)
        self.counts.reserve(room)
        for d in range(self.begin, self.end):
            r = &self.docs.refs[d]
            # Worst case: every character a 4-byte (2-byte for Latin-1) word character, plus a space, plus the
            # 8 spare bytes the table's key loads need.
            maxbytes = r.length * (2 if r.kind == 1 else 4) + 9
            if <size_t>maxbytes > self.buf.size():
                self.buf.resize(maxbytes)
            if r.ascii:
                ntok = self._tokenize_ascii(<const uint8_t*>r.data, r.length, r.fold)
            elif r.kind == 1:
                ntok = self._tokenize(<const uint8_t*>r.data, r.length, r.fold)
            elif r.kind == 2:
                ntok = self._tokenize(<const uint16_t*>r.data, r.length, False)
            else:
                ntok = self._tokenize(<const uint32_t*>r.data, r.length, False)
            self._emit(d, ntok)
        return 0

    cdef Py_ssize_t _tokenize(self, const char_t* s, Py_ssize_t n, bint fold) except -1 nogil:
        """Write the kept tokens of s into buf and their byte ranges into tok_start / tok_end; returns how
        many."""
        cdef uint8_t* out = self.buf.data()
        cdef Py_ssize_t i = 0, pos = 0, tstart, nchars
        cdef uint32_t c
        cdef const uint8_t* table = &_KEEP1[0]
        if fold:
            table = &_FOLD1[0]
        self.tok_start.clear()
        self.tok_end.clear()
        while i < n:
            # Skip to the next word character; c is it (lower-cased, for Latin-1 with fold).
            if char_t is uint8_t:
                c = table[s[i]]
                if c == 0:
                    i += 1
                    continue
            else:
                c = s[i]
                if not _is_word(c):
                    i += 1
                    continue
            tstart = pos
            nchars = 0
            while True:
                # Append c as UTF-8 (never a surrogate: those are not \w).
                if c < 0x80:
                    out[pos] = <uint8_t>c
                    pos += 1
                elif c < 0x800:
                    out[pos] = <uint8_t>(0xC0 | (c >> 6))
                    out[pos + 1] = <uint8_t>(0x80 | (c & 0x3F))
                    pos += 2
                elif c < 0x10000:
                    out[pos] = <uint8_t>(0xE0 | (c >> 12))
                    out[pos + 1] = <uint8_t>(0x80 | ((c >> 6) & 0x3F))
                    out[pos + 2] = <uint8_t>(0x80 | (c & 0x3F))
                    pos += 3
                else:
                    out[pos] = <uint8_t>(0xF0 | (c >> 18))
                    out[pos + 1] = <uint8_t>(0x80 | ((c >> 12) & 0x3F))
                    out[pos + 2] = <uint8_t>(0x80 | ((c >> 6) & 0x3F))
                    out[pos + 3] = <uint8_t>(0x80 | (c & 0x3F))
                    pos += 4
                nchars += 1
                i += 1
                if i >= n:
                    break
                if char_t is uint8_t:
                    c = table[s[i]]
                    if c == 0:
                        break
                else:
                    c = s[i]
                    if not _is_word(c):
                        break
            # The default pattern needs two word characters; a stop word is dropped before n-grams are formed.
            if nchars < 2 or (self.stop is not None and self._is_stop(out + tstart, pos - tstart)):
                pos = tstart
                continue
            self.tok_start.push_back(tstart)
            self.tok_end.push_back(pos)
            out[pos] = 0x20
            pos += 1
        return <Py_ssize_t>self.tok_start.size()

    cdef Py_ssize_t _tokenize_ascii(self, const uint8_t* s, Py_ssize_t n, bint fold) except -1 nogil:
        """_tokenize for an ASCII document, without a branch per character: every character goes through a
        table into buf (a separator as one space where it follows a word character; later separators are
        overwritten), and each change between word and non-word characters stores its position in ``bounds``
        unconditionally, the count advanced by 0 or 1 (token starts and ends alternate there). The loop exits
        of the general tokenizer, mispredicted at every token, cost more than this."""
        cdef const uint16_t* table = &_ASCII_KEEP[0]
        if fold:
            table = &_ASCII_FOLD[0]
        if <size_t>(n + 2) > self.bounds.size():
            self.bounds.resize(n + 2)
        if <size_t>(n // 2 + 2) > self.tok_start.size():
            self.tok_start.resize(n // 2 + 2)
            self.tok_end.resize(n // 2 + 2)
        cdef uint8_t* out = self.buf.data()
        cdef int64_t* bd = self.bounds.data()
        cdef int64_t* ts = self.tok_start.data()
        cdef int64_t* te = self.tok_end.data()
        cdef Py_ssize_t i, pos = 0, nb = 0, k, kept = 0
        cdef uint32_t v, w, change, prev = 0
        for i in range(n):
            v = table[s[i]]
            w = v >> 8
            change = w ^ prev
            out[pos] = <uint8_t>v
            bd[nb] = pos
            nb += change
            pos += w | change
            prev = w
        if prev:
            bd[nb] = pos
            nb += 1
            out[pos] = 0x20
        # Keep the tokens of two or more characters that are not stop words.
        cdef bint dropped = False
        for k in range(0, nb, 2):
            if bd[k + 1] - bd[k] < 2 or (self.stop is not None
                                         and self._is_stop(out + bd[k], bd[k + 1] - bd[k])):
                dropped = True
                continue
            ts[kept] = bd[k]
            te[kept] = bd[k + 1]
            kept += 1
        if dropped and self.max_n > 1:
            # n-grams are slices of buf: close the gaps the dropped tokens left (one space between tokens).
            pos = 0
            for k in range(kept):
                memmove(out + pos, out + ts[k], te[k] - ts[k])
                te[k] = pos + te[k] - ts[k]
                ts[k] = pos
                out[te[k]] = 0x20
                pos = te[k] + 1
        return kept

    cdef int _emit(self, Py_ssize_t d, Py_ssize_t ntok) except -1 nogil:
        """Count the document's n-grams (slices of buf) into this worker's rows."""
        cdef const uint8_t* b = self.buf.data()
        cdef Py_ssize_t nlen, i, row_begin = self.ids.size(), k, m
        cdef int64_t s, klen, at
        cdef uint32_t h, col, prev
        cdef int32_t tid
        cdef int mode = self.mode
        cdef const int64_t* ts = self.tok_start.data()
        cdef const int64_t* te = self.tok_end.data()
        self.raw.clear()
        m = 0
        for nlen in range(self.min_n, min(self.max_n, ntok) + 1):
            m += ntok - nlen + 1
        if <size_t>m > self.gram_hash.size():
            self.gram_start.resize(m)
            self.gram_len.resize(m)
            self.gram_hash.resize(m)
        cdef int64_t* gs = self.gram_start.data()
        cdef int64_t* gl = self.gram_len.data()
        cdef uint32_t* gh = self.gram_hash.data()
        k = 0
        for nlen in range(self.min_n, min(self.max_n, ntok) + 1):
            for i in range(ntok - nlen + 1):
                s = ts[i]
                klen = te[i + nlen - 1] - s
                gs[k] = s
                gl[k] = klen
                if mode == MODE_HASH:
                    gh[k] = _murmur3(b + s, klen, 0)
                else:
                    gh[k] = pyfastnn_key_hash(<const char*>(b + s), klen)
                k += 1
        # The table lookups miss the cache for all but the most frequent terms: the slot of the n-gram a few
        # places ahead is requested while this one is looked up.
        for i in range(m):
            if mode != MODE_HASH and i + _PREFETCH_AHEAD < m:
                self.vocab.prefetch(gh[i + _PREFETCH_AHEAD])
            s = gs[i]
            klen = gl[i]
            h = gh[i]
            if mode == MODE_HASH:
                col = _column(h, self.n_features, self.feature_mask)
            elif mode == MODE_FIXED:
                tid = self.vocab.find(<const char*>(b + s), klen, h)
                if tid < 0:
                    continue
                col = <uint32_t>self.vocab.values[tid]
            else:
                self.vocab.count(<const char*>(b + s), klen, h)
                continue
            if self.use_bits:
                self._bits_add(col, 1)
            else:
                self.raw.push_back(col)
        if mode == MODE_LEARN:
            self.vocab.flush(self.ids, self.counts)
        elif self.use_bits:
            m = self.n_uniq
            self.ids.resize(row_begin + m)
            self.counts.resize(row_begin + m)
            self._bits_emit(self.ids.data() + row_begin, self.counts.data() + row_begin)
        else:
            # Sorted columns with their multiplicities: the canonical CSR row.
            m = self.raw.size()
            if m:
                self._sort_columns()
                prev = self.raw[0]
                at = 1
                for k in range(1, m):
                    col = self.raw[k]
                    if col == prev:
                        at += 1
                    else:
                        self.ids.push_back(<int32_t>prev)
                        self.counts.push_back(at)
                        prev = col
                        at = 1
                self.ids.push_back(<int32_t>prev)
                self.counts.push_back(at)
        self.row_nnz.push_back(<int64_t>self.ids.size() - row_begin)
        return 0

    cdef int _sort_columns(self) except -1 nogil:
        """Sort raw. Columns spread over [0, n_columns) (hashed ones uniformly): a counting pass on their top
        bits into about 2 buckets per element, then an insertion sort that only has to fix the few inversions
        left inside buckets: fewer mispredicted branches than a comparison sort of rows this short."""
        cdef Py_ssize_t m = self.raw.size(), k, j
        cdef int lg = 3, shift
        cdef uint32_t x, b
        if m > 4096:
            # Long rows: a comparison sort, whose worst case stays n log n however the columns cluster.
            std_sort(self.raw.begin(), self.raw.end())
            return 0
        while (<Py_ssize_t>1 << lg) < 2 * m and lg < 16:
            lg += 1
        shift = self.col_bits - lg if self.col_bits > lg else 0
        self.bucket.assign((<size_t>1 << lg) + 1, 0)
        for k in range(m):
            self.bucket[(self.raw[k] >> shift) + 1] += 1
        for k in range(1, <Py_ssize_t>self.bucket.size()):
            self.bucket[k] += self.bucket[k - 1]
        self.raw2.resize(m)
        for k in range(m):
            x = self.raw[k]
            b = x >> shift
            self.raw2[self.bucket[b]] = x
            self.bucket[b] += 1
        for k in range(1, m):
            x = self.raw2[k]
            j = k
            while j > 0 and self.raw2[j - 1] > x:
                self.raw2[j] = self.raw2[j - 1]
                j -= 1
            self.raw2[j] = x
        self.raw.swap(self.raw2)
        return 0

    cdef int write_learned(self, const int32_t* final, int32_t* out_idx, int64_t* out_cnt) except -1 nogil:
        """MODE_LEARN, after the merge: rows with final (sorted-term) columns, sorted, into out_* (which may
        be ids / counts themselves: each row is read whole before it is written)."""
        cdef Py_ssize_t r, k, pos = 0, m, a
        cdef int64_t cnt
        cdef int32_t tmp_i
        cdef bint small
        for r in range(<Py_ssize_t>self.row_nnz.size()):
            m = self.row_nnz[r]
            if self.use_bits:
                for k in range(m):
                    self._bits_add(<uint32_t>final[self.ids[pos + k]], self.counts[pos + k])
                self._bits_emit(out_idx + pos, out_cnt + pos)
                pos += m
                continue
            small = True
            for k in range(m):
                if self.counts[pos + k] > <int64_t>0xFFFFFFFFLL:
                    small = False
                    break
            if small:
                # One 64-bit key per entry (column high, count low): a plain integer sort orders the row.
                self.packed.resize(m)
                for k in range(m):
                    self.packed[k] = ((<uint64_t>final[self.ids[pos + k]] << 32)
                                      | <uint64_t>self.counts[pos + k])
                std_sort(self.packed.begin(), self.packed.end())
                for k in range(m):
                    out_idx[pos + k] = <int32_t>(self.packed[k] >> 32)
                    out_cnt[pos + k] = <int64_t>(self.packed[k] & 0xFFFFFFFFu)
            else:
                # A count of 2**32 or more (a document of over 8 GiB of text): insertion sort of the pairs.
                for k in range(m):
                    tmp_i = final[self.ids[pos + k]]
                    cnt = self.counts[pos + k]
                    a = k
                    while a > 0 and out_idx[pos + a - 1] > tmp_i:
                        out_idx[pos + a] = out_idx[pos + a - 1]
                        out_cnt[pos + a] = out_cnt[pos + a - 1]
                        a -= 1
                    out_idx[pos + a] = tmp_i
                    out_cnt[pos + a] = cnt
            pos += m
        return 0

    def write_learned_py(self, const int32_t[::1] final, int64_t n_columns):
        self._bits_init(n_columns)
        if self.ids.size():
            with nogil:
                self.write_learned(&final[0], self.ids.data(), self.counts.data())


# ----------------------------------------------------------------------------------------------------------
# The workers' vectors handed to NumPy without a copy: a buffer-protocol object owns the vector, the array
# views it.


@cython.final
cdef class _Int32Buffer:
    cdef vector[int32_t] v
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    def __getbuffer__(self, Py_buffer* buffer, int flags):
        self.shape[0] = self.v.size()
        self.strides[0] = sizeof(int32_t)
        buffer.buf = <void*>self.v.data()
        buffer.format = b"i"
        buffer.internal = NULL
        buffer.itemsize = sizeof(int32_t)
        buffer.len = self.shape[0] * sizeof(int32_t)
        buffer.ndim = 1
        buffer.obj = self
        buffer.readonly = 0
        buffer.shape = self.shape
        buffer.strides = self.strides
        buffer.suboffsets = NULL

    def __releasebuffer__(self, Py_buffer* buffer):
        pass


@cython.final
cdef class _Int64Buffer:
    cdef vector[int64_t] v
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    def __getbuffer__(self, Py_buffer* buffer, int flags):
        self.shape[0] = self.v.size()
        self.strides[0] = sizeof(int64_t)
        buffer.buf = <void*>self.v.data()
        buffer.format = b"q"
        buffer.internal = NULL
        buffer.itemsize = sizeof(int64_t)
        buffer.len = self.shape[0] * sizeof(int64_t)
        buffer.ndim = 1
        buffer.obj = self
        buffer.readonly = 0
        buffer.shape = self.shape
        buffer.strides = self.strides
        buffer.suboffsets = NULL

    def __releasebuffer__(self, Py_buffer* buffer):
        pass


cdef object _int32_array(vector[int32_t]& v):
    """An int32 ndarray over the vector's contents (which move out of ``v``)."""
    if v.size() == 0:
        return np.empty(0, dtype=np.int32)
    cdef _Int32Buffer b = _Int32Buffer()
    b.v.swap(v)
    return np.asarray(b)


cdef object _int64_array(vector[int64_t]& v):
    """An int64 ndarray over the vector's contents (which move out of ``v``)."""
    if v.size() == 0:
        return np.empty(0, dtype=np.int64)
    cdef _Int64Buffer b = _Int64Buffer()
    b.v.swap(v)
    return np.asarray(b)


def _run_threads(tasks):
    """Run the callables, the first in this thread and each other one in a thread of its own; re-raise the
    first error. The callables release the GIL, so they run in parallel."""
    if len(tasks) == 1:
        tasks[0]()
        return
    errors = []

    def guarded(task):
        try:
            task()
        except BaseException as exc:  # reported to the caller below
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(t,), daemon=True) for t in tasks[1:]]
    for t in threads:
        t.start()
    try:
        tasks[0]()
    finally:
        for t in threads:
            t.join()
    if errors:
        raise errors[0]


cdef list _workers(_Docs prepared, int mode, int min_n, int max_n, stop_words, _Table vocab,
                   uint32_t n_features, int64_t n_columns, int n_threads):
    cdef _Table stop = _stop_table(stop_words)
    return [_Worker(prepared, b, e, mode, min_n, max_n, stop, vocab, n_features, n_columns)
            for b, e in prepared.chunks(n_threads)]


cdef object _indptr(list workers, Py_ssize_t n_docs):
    """Row pointers of the workers' rows, in document order."""
    indptr = np.empty(n_docs + 1, dtype=np.int64)
    cdef int64_t[::1] ip = indptr
    cdef int64_t at = 0
    cdef Py_ssize_t row = 0, r
    cdef _Worker w
    ip[0] = 0
    for w in workers:
        for r in range(<Py_ssize_t>w.row_nnz.size()):
            at += w.row_nnz[r]
            row += 1
            ip[row] = at
    return indptr


cdef tuple _take_rows(list workers, Py_ssize_t n_docs):
    """indptr, indices, counts of the workers' (final) rows, in document order: the first worker's vectors
    with the others' appended, handed to NumPy without another copy."""
    cdef _Worker w0 = workers[0], w
    cdef size_t at = w0.ids.size(), total = 0
    for w in workers:
        total += w.ids.size()
    indptr = _indptr(workers, n_docs)
    if len(workers) > 1:
        w0.ids.resize(total)
        w0.counts.resize(total)
        for w in workers[1:]:
            if w.ids.size():
                with nogil:
                    memcpy(w0.ids.data() + at, w.ids.data(), w.ids.size() * sizeof(int32_t))
                    memcpy(w0.counts.data() + at, w.counts.data(), w.counts.size() * sizeof(int64_t))
            at += w.ids.size()
            vector[int32_t]().swap(w.ids)
            vector[int64_t]().swap(w.counts)
    return indptr, _int32_array(w0.ids), _int64_array(w0.counts)


def count_new(list docs, decode, bint lowercase, stop_words, int min_n, int max_n, int n_threads):
    """Learn the vocabulary and count: ``(terms, indptr, indices, counts)``; see the module docstring."""
    cdef _Docs prepared = _Docs(docs, decode, lowercase)
    cdef list workers = _workers(prepared, MODE_LEARN, min_n, max_n, stop_words, None, 0, 0, n_threads)
    _run_threads([w.run for w in workers])

    # Merge the workers' vocabularies into the first one's; map every local id to a global one.
    cdef _Worker w0 = workers[0], w
    cdef _Table glob = w0.vocab, loc
    cdef list local_maps = [None]
    cdef int32_t[::1] lm
    cdef int32_t j
    cdef int64_t off
    for w in workers[1:]:
        loc = w.vocab
        m = np.empty(loc.n, dtype=np.int32)
        lm = m
        with nogil:
            for j in range(loc.n):
                off = loc.offsets[j]
                lm[j] = glob.insert(loc.arena.data() + off, loc.offsets[j + 1] - off, loc.hashes[j])
        local_maps.append(m)

    cdef int32_t V = glob.n
    order = np.arange(V, dtype=np.int32)
    cdef int32_t[::1] od = order
    if V:
        with nogil:
            pyfastnn_sort_terms(&od[0], V, glob.arena.data(), glob.offsets.data())
    rank = np.empty(V, dtype=np.int32)
    rank[order] = np.arange(V, dtype=np.int32)
    terms = [PyUnicode_DecodeUTF8(glob.arena.data() + glob.offsets[od[j]],
                                  glob.offsets[od[j] + 1] - glob.offsets[od[j]], NULL) for j in range(V)]

    # Rows renumbered to the sorted terms and ordered, each worker in place, all in parallel.
    tasks = []
    for k, w in enumerate(workers):
        tasks.append(_bind(w, rank if k == 0 else rank[local_maps[k]], V))
    _run_threads(tasks)
    return (terms, *_take_rows(workers, len(docs)))


def _bind(_Worker w, final, n_columns):
    return lambda: w.write_learned_py(final, n_columns)


def count_fixed(list docs, decode, bint lowercase, stop_words, int min_n, int max_n, _Table table,
                int n_threads):
    """Count over a fixed vocabulary (``make_table``): ``(indptr, indices, counts)``; see the module
    docstring."""
    cdef _Docs prepared = _Docs(docs, decode, lowercase)
    cdef list workers = _workers(prepared, MODE_FIXED, min_n, max_n, stop_words, table, 0, table.n_columns(),
                                    n_threads)
    _run_threads([w.run for w in workers])
    return _take_rows(workers, len(docs))


def hash_counts(list docs, decode, bint lowercase, stop_words, int min_n, int max_n, Py_ssize_t n_features,
                int n_threads):
    """Count at hashed columns: ``(indptr, indices, counts)``; see the module docstring."""
    if not 1 <= n_features <= 2147483647:
        raise ValueError(f"n_features must be in [1, 2**31 - 1], got {n_features}")
    cdef _Docs prepared = _Docs(docs, decode, lowercase)
    cdef list workers = _workers(prepared, MODE_HASH, min_n, max_n, stop_words, None, <uint32_t>n_features,
                                 n_features, n_threads)
    _run_threads([w.run for w in workers])
    return _take_rows(workers, len(docs))


# ----------------------------------------------------------------------------------------------------------
# Records of a delimited text file without quoting: the text and label cells of every record.

cdef extern from "Python.h":
    object PyUnicode_Substring(object o, Py_ssize_t start, Py_ssize_t end)


cdef inline Py_ssize_t _find(const char_t* s, Py_ssize_t i, Py_ssize_t end, Py_UCS4 c) noexcept nogil:
    """The first index in [i, end) holding c, else end (memchr, vectorised by the C library, for 1-byte
    text)."""
    cdef const void* hit
    if char_t is uint8_t:
        if c > 255 or i >= end:
            return end
        hit = memchr(s + i, <int>c, end - i)
        return end if hit == NULL else <const uint8_t*>hit - s
    else:
        while i < end and s[i] != c:
            i += 1
        return i


cdef tuple _columns(const char_t* s, Py_ssize_t n, object text, Py_UCS4 delimiter, Py_ssize_t ncols,
                    Py_ssize_t tcol, Py_ssize_t lcol):
    cdef list texts = [], labels = []
    cdef vector[int64_t] lines
    cdef Py_ssize_t start = 0, end, cut, cell, tb, te, lb, le
    cdef int64_t number = 1
    while start <= n:
        # One physical line [start, end): the first "\r" or "\n" from start.
        end = _find(s, start, n, 10)
        end = _find(s, start, end, 13)
        # Its cells counted and the two wanted ones located.
        cell = 0
        tb = lb = start
        te = le = end
        cut = _find(s, start, end, delimiter)
        while cut < end:
            if cell == tcol:
                te = cut
            if cell == lcol:
                le = cut
            cell += 1
            if cell == tcol:
                tb = cut + 1
            if cell == lcol:
                lb = cut + 1
            cut = _find(s, cut + 1, end, delimiter)
        if end > start:  # an empty line is no record
            if cell == 0 and not PyUnicode_Substring(text, start, end).strip():
                pass  # a blank line without a delimiter is no record either
            elif cell + 1 != ncols:
                return texts, labels, _int64_array(lines), number, cell + 1
            else:
                texts.append(PyUnicode_Substring(text, tb, te))
                labels.append(PyUnicode_Substring(text, lb, le))
                lines.push_back(number)
        if end >= n:
            break
        # "\r\n", "\r" and "\n" each end one line.
        start = end + 2 if s[end] == 13 and end + 1 < n and s[end + 1] == 10 else end + 1
        number += 1
    return texts, labels, _int64_array(lines), 0, 0


def text_columns(str text, str delimiter, Py_ssize_t ncols, Py_ssize_t tcol, Py_ssize_t lcol):
    """The cells ``tcol`` and ``lcol`` of every record of an unquoted delimited ``text``:
    ``(texts, labels, lines, bad_line, bad_columns)``, ``lines`` (int64) the 1-based line number of each
    record. Records end at "\\r\\n", "\\r" or "\\n"; an empty line, or a blank one (``str.strip``) without a
    delimiter, is none. At the first record with other than ``ncols`` cells the scan stops, returning what it
    read before and that record's line number and cell count (else 0, 0)."""
    if len(delimiter) != 1 or not 0 <= tcol < ncols or not 0 <= lcol < ncols:
        raise ValueError("text_columns: one delimiter character and columns in [0, ncols)")
    pyfastnn_unicode_ready(text)
    cdef Py_UCS4 d = delimiter[0]
    cdef int kind = PyUnicode_KIND(text)
    cdef void* data = PyUnicode_DATA(text)
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text)
    if kind == 1:
        return _columns(<const uint8_t*>data, n, text, d, ncols, tcol, lcol)
    if kind == 2:
        return _columns(<const uint16_t*>data, n, text, d, ncols, tcol, lcol)
    return _columns(<const uint32_t*>data, n, text, d, ncols, tcol, lcol)
