// GEMM loop framework: blocking loops, packing, macro-kernel, small-problem path and the thread split.
// Baseline code: everything ISA-specific is reached through the dispatch table.
#include "gemm/gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <memory>
#include <new>
#include <stdexcept>

#if defined(__SSE2__)
#include <emmintrin.h>
#include <xmmintrin.h>
#endif

#include "dispatch.h"
#include "gemm/direct.h"
#include "gemm/kernel.h"
#include "threads.h"

namespace pyfastnn {
namespace {

// Defaults measured on Zen 4 (benchmarks/bench_gemm.py --crossover, float32, one thread).
// Direct path: packing pays off from about 20^3 (packed is ahead at 24^3 in every transpose case), and for very
// few rows, where a 14-row tile would be mostly padding, the direct loop wins up to m = 4 (m = 8 when B is given
// transposed: the dot-product form of the direct loop is the stronger one). Two threads win from ~48^3 once the
// pool is warm (52 vs 40 GFLOP/s at 48^3, 28 vs 28 at 32^3).
std::atomic<std::int64_t> g_direct_max_work{20 * 20 * 20};
std::atomic<std::int64_t> g_direct_max_m{4};
// Below ~80^3 multiply-adds the hand-off to a second thread costs more than it saves inside a training step
// (S = 64-128-10 at batch 32: 0.93M samples/s on one thread against 0.82M split; at batch 256, 2.1M-element
// GEMMs, splitting wins: 1.53M against 1.22M).
std::atomic<std::int64_t> g_parallel_min_work{80 * 80 * 80};
std::atomic<std::int64_t> g_small_m_tiles{1};
std::atomic<std::int64_t> g_inplace_max_k{64};
std::atomic<int> g_mc{0}, g_kc{0}, g_nc{0};

constexpr std::size_t buffer_align = 64;  // a cache line; also what the aligned vector loads of B need

// Every kernel descriptor of every supported level (and their shorter-tile variants) with its blocks, built once.
template <class T>
struct block_entry {
    const gemm_kernel<T>* kern;
    resolved_blocks blocks;
};
template <class T>
struct block_table {
    block_entry<T> entries[2 * isa_level_count];
    int count = 0;
    void add(const gemm_kernel<T>* k) {
        for (; k != nullptr && count < int(std::size(entries)); k = k->small_m)
            entries[count++] = {k, resolve_blocks(k->mr, k->nr, int(sizeof(T)), gemm_blocks{k->mc, k->kc, k->nc})};
    }
};
template <class T>
const gemm_kernel<T>* kernel_of(const kernel_table& t);
template <>
const gemm_kernel<float>* kernel_of<float>(const kernel_table& t) { return t.f32; }
template <>
const gemm_kernel<double>* kernel_of<double>(const kernel_table& t) { return t.f64; }

template <class T>
const block_table<T>& all_blocks() {
    static const block_table<T> table = [] {
        block_table<T> b;
        for (isa_level level : supported_isas()) b.add(kernel_of<T>(kernels_for(level)));
        return b;
    }();
    return table;
}

template <class T>
const gemm_kernel<T>& active_kernel();
template <>
const gemm_kernel<float>& active_kernel<float>() { return *active_kernels().f32; }
template <>
const gemm_kernel<double>& active_kernel<double>() { return *active_kernels().f64; }

std::int64_t round_up(std::int64_t x, std::int64_t to) { return (x + to - 1) / to * to; }

// Block length for a loop of `extent` with nominal block `block`: the same number of blocks, but of equal length
// (rounded up to a multiple of `unit`, the tile). K = 784 with kc = 512 becomes 2 x 392 rather than 512 + 272, and
// M = 2048 with mc = 336 becomes 7 x 294 rather than 6 x 336 + 32: no short tail pass that runs at a fraction of
// the speed (a short kc pays the C tile load/store for little work, a short mc starves the second thread).
std::int64_t balanced_block(std::int64_t extent, std::int64_t block, std::int64_t unit) {
    block = round_up(std::max<std::int64_t>(block, 1), unit);
    const std::int64_t blocks = (extent + block - 1) / block;
    return std::min(block, round_up((extent + blocks - 1) / blocks, unit));
}

// Grow-only, 64-byte aligned scratch, one set per calling thread (callers may run GEMMs concurrently with the
// GIL released; the pool's workers only use the caller's buffers through the region context).
class scratch {
public:
    void* get(std::size_t bytes) {
        if (bytes > size_) {
            const std::size_t rounded = (bytes + buffer_align - 1) / buffer_align * buffer_align;
            void* p = std::aligned_alloc(buffer_align, rounded);
            if (p == nullptr) throw std::bad_alloc();
            data_.reset(p);
            size_ = rounded;
        }
        return data_.get();
    }

private:
    struct deleter {
        void operator()(void* p) const { std::free(p); }
    };
    std::unique_ptr<void, deleter> data_;
    std::size_t size_ = 0;
};

struct workspace {
    scratch a[2], b[2], row;  // A and B blocks are double-buffered: see run_region
};
workspace& thread_workspace() {
    thread_local workspace ws;
    return ws;
}

// C = beta * C, with beta == 0 writing zeros (never reading C, which may hold NaN).
template <class T>
void scale_c(std::int64_t m, std::int64_t n, T beta, T* c, std::int64_t rs_c) {
    if (beta == T(1)) return;
    for (std::int64_t i = 0; i < m; ++i) {
        T* ci = c + i * rs_c;
        if (beta == T(0)) std::fill(ci, ci + n, T(0));
        else
            for (std::int64_t j = 0; j < n; ++j) ci[j] *= beta;
    }
}

// dst[p * ld_dst + r] = src[r * rs + p] for p < kc and r < R, for the largest R <= rows handled in register blocks
// (SSE2, which every x86-64 CPU has, so this stays baseline code); returns R. The caller does rows R..rows-1.
inline int transpose_rows(int rows, std::int64_t kc, const float* src, std::int64_t rs, float* dst, int ld_dst) {
#if defined(__SSE2__)
    int r = 0;
    for (; r + 4 <= rows; r += 4) {
        const float* s0 = src + (r + 0) * rs;
        const float* s1 = src + (r + 1) * rs;
        const float* s2 = src + (r + 2) * rs;
        const float* s3 = src + (r + 3) * rs;
        std::int64_t p = 0;
        for (; p + 4 <= kc; p += 4) {
            __m128 v0 = _mm_loadu_ps(s0 + p), v1 = _mm_loadu_ps(s1 + p);
            __m128 v2 = _mm_loadu_ps(s2 + p), v3 = _mm_loadu_ps(s3 + p);
            _MM_TRANSPOSE4_PS(v0, v1, v2, v3);
            _mm_storeu_ps(dst + (p + 0) * ld_dst + r, v0);
            _mm_storeu_ps(dst + (p + 1) * ld_dst + r, v1);
            _mm_storeu_ps(dst + (p + 2) * ld_dst + r, v2);
            _mm_storeu_ps(dst + (p + 3) * ld_dst + r, v3);
        }
        for (; p < kc; ++p) {
            float* d = dst + p * ld_dst + r;
            d[0] = s0[p], d[1] = s1[p], d[2] = s2[p], d[3] = s3[p];
        }
    }
    return r;
#else
    (void)kc, (void)src, (void)rs, (void)dst, (void)ld_dst;
    return rows * 0;
#endif
}

inline int transpose_rows(int rows, std::int64_t kc, const double* src, std::int64_t rs, double* dst, int ld_dst) {
#if defined(__SSE2__)
    int r = 0;
    for (; r + 2 <= rows; r += 2) {
        const double* s0 = src + (r + 0) * rs;
        const double* s1 = src + (r + 1) * rs;
        std::int64_t p = 0;
        for (; p + 2 <= kc; p += 2) {
            const __m128d v0 = _mm_loadu_pd(s0 + p), v1 = _mm_loadu_pd(s1 + p);
            _mm_storeu_pd(dst + (p + 0) * ld_dst + r, _mm_unpacklo_pd(v0, v1));
            _mm_storeu_pd(dst + (p + 1) * ld_dst + r, _mm_unpackhi_pd(v0, v1));
        }
        for (; p < kc; ++p) {
            double* d = dst + p * ld_dst + r;
            d[0] = s0[p], d[1] = s1[p];
        }
    }
    return r;
#else
    (void)kc, (void)src, (void)rs, (void)dst, (void)ld_dst;
    return rows * 0;
#endif
}

// Packs MR-row micro-panels [panel_begin, panel_end) of the mc x kc block of op(A) at `a`: panel ip holds
// op(A)(ip*MR + r, p) at dst[ip*MR*kc + p*MR + r], rows past mc zero-filled so every tile is full.
template <class T>
void pack_a(std::int64_t panel_begin, std::int64_t panel_end, std::int64_t mc, std::int64_t kc, const T* a,
            std::int64_t rs_a, std::int64_t cs_a, int mr, T* buf) {
    if (cs_a != 1) {
        // op(A) columns contiguous (A given transposed): walk the source row by row (k step by k step) across all
        // the panels, so reads are sequential; panel by panel would hop a page per k step (TLB misses). Four k
        // steps per pass: each panel then receives 4 * MR consecutive values, not MR values at a time, and with
        // unit row stride the copies are fixed runs the compiler vectorizes (2.0x faster alone, 132 x 256 block;
        // +1-3% on the dW1 = Δ1ᵀ·A0 product of M at batch 256, one thread).
        constexpr int steps_per_pass = 4;
        for (std::int64_t p = 0; p < kc; p += steps_per_pass) {
            const int steps = int(std::min<std::int64_t>(steps_per_pass, kc - p));
            const T* src = a + p * cs_a;
            for (std::int64_t ip = panel_begin; ip < panel_end; ++ip) {
                const std::int64_t i0 = ip * mr;
                const int rows = int(std::min<std::int64_t>(mr, mc - i0));
                const T* s = src + i0 * rs_a;
                T* d = buf + ip * mr * kc + p * mr;
                for (int q = 0; q < steps; ++q, s += cs_a, d += mr) {
                    if (rs_a == 1)
                        for (int r = 0; r < rows; ++r) d[r] = s[r];
                    else
                        for (int r = 0; r < rows; ++r) d[r] = s[r * rs_a];
                }
            }
        }
    }
    for (std::int64_t ip = panel_begin; ip < panel_end; ++ip) {
        const std::int64_t i0 = ip * mr;
        const int rows = int(std::min<std::int64_t>(mr, mc - i0));
        T* dst = buf + ip * mr * kc;
        if (cs_a == 1) {
            // op(A) rows contiguous: a transpose. Done in small register blocks where the baseline ISA has them,
            // because element by element it was ~6% of a 1024^3 multiply (perf), half the packing time.
            int r = transpose_rows(rows, kc, a + i0 * rs_a, rs_a, dst, mr);
            for (; r < rows; ++r) {
                const T* src = a + (i0 + r) * rs_a;
                for (std::int64_t p = 0; p < kc; ++p) dst[p * mr + r] = src[p];
            }
        }
        if (rows < mr)
            for (std::int64_t p = 0; p < kc; ++p)
                for (int r = rows; r < mr; ++r) dst[p * mr + r] = T(0);
    }
}

// Packs NR-column micro-panels [panel_begin, panel_end) of the kc x nc block of op(B) at `b`: panel jp holds
// op(B)(p, jp*NR + j) at dst[jp*NR*kc + p*NR + j], columns past nc zero-filled.
template <class T>
void pack_b(std::int64_t panel_begin, std::int64_t panel_end, std::int64_t kc, std::int64_t nc, const T* b,
            std::int64_t rs_b, std::int64_t cs_b, int nr, T* buf) {
    if (panel_begin >= panel_end) return;
    if (cs_b == 1) {
        // op(B) rows contiguous: copy row p of the source across all panels before moving to row p + 1, so the
        // source is read sequentially (panel by panel it hops a whole row, often a page, per k step: perf showed
        // this copy as half of the packing time before).
        const std::int64_t j_begin = panel_begin * nr, j_end = std::min(panel_end * nr, nc);
        const std::int64_t full_end = j_begin + (j_end - j_begin) / nr * nr;  // start of a partial last panel
        for (std::int64_t p = 0; p < kc; ++p) {
            const T* src = b + p * rs_b;
            for (std::int64_t j0 = j_begin; j0 < full_end; j0 += nr) {
                T* d = buf + (j0 / nr) * nr * kc + p * nr;
                for (int j = 0; j < nr; ++j) d[j] = src[j0 + j];
            }
            if (full_end < j_end) {
                T* d = buf + (full_end / nr) * nr * kc + p * nr;
                const int cols = int(j_end - full_end);
                for (int j = 0; j < cols; ++j) d[j] = src[full_end + j];
                for (int j = cols; j < nr; ++j) d[j] = T(0);
            }
        }
        return;
    }
    for (std::int64_t jp = panel_begin; jp < panel_end; ++jp) {
        // op(B) columns contiguous (B given transposed, e.g. W in A·Wᵀ): a transpose, in the same register
        // blocks as pack_a (element by element it cost ~3 µs of a 12.6 µs 32x128x64 forward GEMM); columns it
        // leaves, and general strides, are copied one by one, each column read once, in order.
        const std::int64_t j0 = jp * nr;
        const int cols = int(std::min<std::int64_t>(nr, nc - j0));
        T* dst = buf + jp * nr * kc;
        const int done = rs_b == 1 ? transpose_rows(cols, kc, b + j0 * cs_b, cs_b, dst, nr) : 0;
        for (int j = done; j < cols; ++j) {
            const T* src = b + (j0 + j) * cs_b;
            for (std::int64_t p = 0; p < kc; ++p) dst[p * nr + j] = src[p * rs_b];
        }
        if (cols < nr)
            for (std::int64_t p = 0; p < kc; ++p)
                for (int j = cols; j < nr; ++j) dst[p * nr + j] = T(0);
    }
}

template <class T>
struct region {
    const gemm_kernel<T>* kern;
    std::int64_t m, n, k;
    T alpha, beta;
    const T* a;
    std::int64_t rs_a, cs_a;
    const T* b;
    std::int64_t rs_b, cs_b;
    T* c;
    std::int64_t rs_c;
    std::int64_t mc, kc, nc;
    // Read op(A) / op(B) in place instead of packing them (full micro-panels only; see gemm_strided).
    bool a_inplace, b_inplace;
    const gemm_epilogue<T>* ep;  // null, or the epilogue that receives C's final values (gemm.h)
    T* a_buf[2];
    T* b_buf[2];
};

// Splits [0, count) into nthreads near-equal contiguous ranges.
inline void split(std::int64_t count, int tid, int nthreads, std::int64_t* begin, std::int64_t* end) {
    *begin = count * tid / nthreads;
    *end = count * (tid + 1) / nthreads;
}

// Hands a thread's tiles of C over to the epilogue as they are stored, column of tiles by column of tiles (the
// macro-kernel's order), in rectangles of whole columns of tiles `group` tiles wide (64 columns of C): while
// they are still in L2 (mc x 64 values), and with rows long enough for the epilogue to run at full vector
// speed along them (tile by tile, 16-column rows and the jumps between them cost as much as an optimizer's
// arithmetic). The thread's first column of tiles may start below the top and its last may end above the
// bottom: those go on their own.
template <class T>
class epilogue_spans {
public:
    epilogue_spans(const gemm_epilogue<T>* ep, std::int64_t tile_begin, std::int64_t m_tiles, std::int64_t group,
                   int mr, int nr, std::int64_t mc, std::int64_t nc, T* c, std::int64_t rs_c, std::int64_t ic,
                   std::int64_t jc)
        : ep_(ep), m_tiles_(m_tiles), group_(group), mr_(mr), nr_(nr), mc_(mc), nc_(nc), c_(c), rs_c_(rs_c),
          ic_(ic), jc_(jc), span_jr_(tile_begin / m_tiles), span_ir_(tile_begin % m_tiles) {}

    // Tile (ir, jr) is stored; `last`: it is the thread's last tile.
    void tile_done(std::int64_t jr, std::int64_t ir, bool last) {
        if (ir == m_tiles_ - 1) {  // column jr is complete
            if (span_ir_ != 0 || jr + 1 - span_jr_ >= group_ || last) {
                hand(span_ir_, m_tiles_, span_jr_, jr + 1);
                span_jr_ = jr + 1, span_ir_ = 0;
            }
        } else if (last) {  // ends mid-column: the whole columns before it, then the top of its column
            if (span_jr_ < jr) hand(0, m_tiles_, span_jr_, jr);
            hand(span_jr_ == jr ? span_ir_ : 0, ir + 1, jr, jr + 1);
        }
    }

private:
    void hand(std::int64_t ir0, std::int64_t ir1, std::int64_t jr0, std::int64_t jr1) const {
        const std::int64_t i0 = ir0 * mr_, i1 = std::min(ir1 * mr_, mc_);
        const std::int64_t j0 = jr0 * nr_, j1 = std::min(jr1 * nr_, nc_);
        if (i0 < i1 && j0 < j1) ep_->fn(ep_->ctx, ic_ + i0, jc_ + j0, i1 - i0, j1 - j0, c_ + i0 * rs_c_ + j0, rs_c_);
    }

    const gemm_epilogue<T>* ep_;
    std::int64_t m_tiles_, group_;
    int mr_, nr_;
    std::int64_t mc_, nc_;
    T* c_;
    std::int64_t rs_c_, ic_, jc_;
    std::int64_t span_jr_, span_ir_;  // the first column of tiles not handed over yet, and its first row of tiles
};

// Macro-kernel: tiles [tile_begin, tile_end) of the mc x nc block, numbered column of tiles by column of tiles
// (jr-major) so consecutive tiles of one thread reuse the same B micro-panel from L1. a_src / b_src are the
// block's origins in op(A) / op(B), read directly by full micro-panels when the region says in place. ep (null
// unless this is the last pass over K) receives the tiles once they are stored (epilogue_spans); (ic, jc) is the
// block's origin in C.
template <class T>
void macro_kernel(const region<T>& g, std::int64_t tile_begin, std::int64_t tile_end, std::int64_t mc,
                  std::int64_t nc, std::int64_t kc, const T* a_pack, const T* b_pack, const T* a_src,
                  const T* b_src, T* c, T beta, const gemm_epilogue<T>* ep, std::int64_t ic, std::int64_t jc) {
    const gemm_kernel<T>& kern = *g.kern;
    const int mr = kern.mr, nr = kern.nr;
    const std::int64_t m_tiles = (mc + mr - 1) / mr;
    alignas(64) T tile[32 * 64];  // edge tiles go through here: MR x NR of every kernel fits
    epilogue_spans<T> spans(ep, tile_begin, m_tiles, std::max(1, 64 / nr), mr, nr, mc, nc, c, g.rs_c, ic, jc);
    for (std::int64_t t = tile_begin; t < tile_end; ++t) {
        const std::int64_t jr = t / m_tiles, ir = t % m_tiles;
        const std::int64_t i0 = ir * mr, j0 = jr * nr;
        T* cp = c + i0 * g.rs_c + j0;
        const int rows = int(std::min<std::int64_t>(mr, mc - i0));
        const int cols = int(std::min<std::int64_t>(nr, nc - j0));
        const bool a_here = g.a_inplace && rows == mr, b_here = g.b_inplace && cols == nr;
        const T* ap = a_here ? a_src + i0 * g.rs_a : a_pack + ir * mr * kc;
        const T* bp = b_here ? b_src + j0 * g.cs_b : b_pack + jr * nr * kc;
        const std::int64_t a_step = a_here ? g.cs_a : mr, b_step = b_here ? g.rs_b : nr;
        if (rows == mr && cols == nr) {
            kern.ukernel(kc, ap, a_step, bp, b_step, cp, g.rs_c, g.alpha, beta);
        } else {
            // Full tile into the scratch tile, then only the valid part into C.
            kern.ukernel(kc, ap, a_step, bp, b_step, tile, nr, g.alpha, T(0));
            for (int r = 0; r < rows; ++r) {
                T* cr = cp + r * g.rs_c;
                const T* tr = tile + r * nr;
                if (beta == T(0))
                    for (int j = 0; j < cols; ++j) cr[j] = tr[j];
                else
                    for (int j = 0; j < cols; ++j) cr[j] = tr[j] + beta * cr[j];
            }
        }
        if (ep != nullptr) spans.tile_done(jr, ir, t + 1 == tile_end);
    }
}

// Body of the packed path, run by every thread of the region. Packing is shared: each thread packs a slice of
// the micro-panels, then one barrier, then each thread computes its slice of the tiles. A and B blocks are
// double-buffered, which makes that single barrier per block enough: a thread can only be refilling buffer
// (i+1)%2 after passing barrier i, which every thread reaches only after finishing its tiles of block i-1 -- the
// last user of that buffer.
template <class T>
void run_region(void* ctx, const team& t) {
    const region<T>& g = *static_cast<const region<T>*>(ctx);
    const int mr = g.kern->mr, nr = g.kern->nr;
    int a_iter = 0, b_iter = 0;
    for (std::int64_t jc = 0; jc < g.n; jc += g.nc) {
        const std::int64_t nc = std::min(g.nc, g.n - jc);
        const std::int64_t n_panels = (nc + nr - 1) / nr;
        for (std::int64_t pc = 0; pc < g.k; pc += g.kc) {
            const std::int64_t kc = std::min(g.kc, g.k - pc);
            // beta applies once, on the first pass over K; later passes accumulate.
            const T beta = pc == 0 ? g.beta : T(1);
            T* b_pack = g.b_buf[b_iter++ & 1];
            const T* b_src = g.b + pc * g.rs_b + jc * g.cs_b;
            std::int64_t p0, p1;
            split(n_panels, t.tid, t.nthreads, &p0, &p1);
            if (g.b_inplace) p0 = std::max(p0, nc / nr);  // only a partial last panel is packed
            pack_b(p0, p1, kc, nc, b_src, g.rs_b, g.cs_b, nr, b_pack);
            for (std::int64_t ic = 0; ic < g.m; ic += g.mc) {
                const std::int64_t mc = std::min(g.mc, g.m - ic);
                const std::int64_t m_panels = (mc + mr - 1) / mr;
                T* a_pack = g.a_buf[a_iter++ & 1];
                const T* a_src = g.a + ic * g.rs_a + pc * g.cs_a;
                split(m_panels, t.tid, t.nthreads, &p0, &p1);
                if (g.a_inplace) p0 = std::max(p0, mc / mr);
                pack_a(p0, p1, mc, kc, a_src, g.rs_a, g.cs_a, mr, a_pack);
                t.barrier->wait();  // the whole A block (and B block, on the first ic) is packed
                std::int64_t t0, t1;
                split(m_panels * n_panels, t.tid, t.nthreads, &t0, &t1);
                macro_kernel(g, t0, t1, mc, nc, kc, a_pack, b_pack, a_src, b_src, g.c + ic * g.rs_c + jc, beta,
                             pc + kc >= g.k ? g.ep : nullptr, ic, jc);
            }
        }
    }
}

}  // namespace

template <class T>
resolved_blocks kernel_blocks(const gemm_kernel<T>& kern) {
    const block_table<T>& t = all_blocks<T>();
    for (int i = 0; i < t.count; ++i)
        if (t.entries[i].kern == &kern) return t.entries[i].blocks;
    return {gemm_blocks{kern.mc, kern.kc, kern.nc}, "kernel"};  // not a dispatch-table kernel (tests)
}

gemm_params get_gemm_params() {
    gemm_params p;
    p.direct_max_work = g_direct_max_work.load();
    p.direct_max_m = g_direct_max_m.load();
    p.parallel_min_work = g_parallel_min_work.load();
    p.small_m_tiles = g_small_m_tiles.load();
    p.inplace_max_k = g_inplace_max_k.load();
    p.mc = g_mc.load();
    p.kc = g_kc.load();
    p.nc = g_nc.load();
    return p;
}

void set_gemm_params(const gemm_params& p) {
    if (p.direct_max_work < 0 || p.direct_max_m < 0 || p.parallel_min_work < 0 || p.small_m_tiles < 0 ||
        p.inplace_max_k < 0 || p.mc < 0 || p.kc < 0 || p.nc < 0 || p.mc > (1 << 20) || p.kc > (1 << 20) ||
        p.nc > (1 << 20))
        throw std::invalid_argument("gemm parameters must be >= 0 (block sizes at most 2**20)");
    g_direct_max_work = p.direct_max_work;
    g_direct_max_m = p.direct_max_m;
    g_parallel_min_work = p.parallel_min_work;
    g_small_m_tiles = p.small_m_tiles;
    g_inplace_max_k = p.inplace_max_k;
    g_mc = p.mc;
    g_kc = p.kc;
    g_nc = p.nc;
}

template <class T>
void gemm_strided(std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a, std::int64_t rs_a,
                  std::int64_t cs_a, const T* b, std::int64_t rs_b, std::int64_t cs_b, T beta, T* c,
                  std::int64_t rs_c, const gemm_epilogue<T>* ep) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0 || alpha == T(0)) {
        scale_c(m, n, beta, c, rs_c);
        if (ep != nullptr) ep->fn(ep->ctx, 0, 0, m, n, c, rs_c);
        return;
    }
    const gemm_kernel<T>* kp = &active_kernel<T>();
    // Few rows: the kernel's shorter tile when it pads less (32 rows: 4 x 8 instead of 3 x 14).
    if (kp->small_m != nullptr && m <= kp->small_m_max && g_small_m_tiles.load(std::memory_order_relaxed) != 0 &&
        round_up(m, kp->small_m->mr) < round_up(m, kp->mr))
        kp = kp->small_m;
    const gemm_kernel<T>& kern = *kp;
    workspace& ws = thread_workspace();
    // Saturating product: the shapes come from real arrays, but m * n * k can still exceed int64.
    const double work = double(m) * double(n) * double(k);

    const std::int64_t direct_max_m = g_direct_max_m.load(std::memory_order_relaxed) * (cs_b != 1 ? 2 : 1);
    // Narrow outputs (an output layer of 10 classes) would fill under half of each packed tile's columns: the
    // unpacked loop is faster there (measured: 32x10x128 2.6 us direct vs 5.0 us packed; 256x10x128 20 vs 26).
    const bool narrow = 2 * n <= kern.nr;
    if (work < double(g_direct_max_work.load(std::memory_order_relaxed)) || m <= direct_max_m || narrow) {
        T* row = static_cast<T*>(ws.row.get(std::size_t(direct_work_size(k)) * sizeof(T)));
        kern.direct(m, n, k, alpha, a, rs_a, cs_a, b, rs_b, cs_b, beta, c, rs_c, row);
        // The unpacked loop has no tiles: the epilogue gets C whole (few rows, few columns or few elements here).
        if (ep != nullptr) ep->fn(ep->ctx, 0, 0, m, n, c, rs_c);
        return;
    }

    region<T> g;
    g.kern = &kern;
    g.m = m, g.n = n, g.k = k;
    g.alpha = alpha, g.beta = beta;
    g.a = a, g.rs_a = rs_a, g.cs_a = cs_a;
    g.b = b, g.rs_b = rs_b, g.cs_b = cs_b;
    g.c = c, g.rs_c = rs_c;
    g.ep = ep;
    const int mc_o = g_mc.load(), kc_o = g_kc.load(), nc_o = g_nc.load();
    const gemm_blocks blocks = kernel_blocks(kern).blocks;
    g.mc = balanced_block(m, mc_o > 0 ? mc_o : blocks.mc, kern.mr);
    g.kc = balanced_block(k, kc_o > 0 ? kc_o : blocks.kc, 1);
    g.nc = balanced_block(n, nc_o > 0 ? nc_o : blocks.nc, kern.nr);
    // Shallow problems (k at most inplace_max_k: the weight-gradient GEMMs ΔᵀA of a batch) read op(A) in place
    // when its columns are contiguous (A given transposed) and op(B) when its rows are: the micro-panels are then
    // a few dozen short rows, which the caches serve as well as a packed copy, and packing (as many loads and
    // stores as the FMAs of a k = 32 tile row) is skipped.
    const bool shallow = k <= g_inplace_max_k.load(std::memory_order_relaxed);
    g.a_inplace = shallow && rs_a == 1;
    g.b_inplace = shallow && cs_b == 1;

    const std::int64_t mc_alloc = round_up(std::min(g.mc, m), kern.mr);
    const std::int64_t nc_alloc = round_up(std::min(g.nc, n), kern.nr);
    const std::int64_t kc_alloc = std::min(g.kc, k);
    for (int i = 0; i < 2; ++i) {
        g.a_buf[i] = static_cast<T*>(ws.a[i].get(std::size_t(mc_alloc * kc_alloc) * sizeof(T)));
        g.b_buf[i] = static_cast<T*>(ws.b[i].get(std::size_t(nc_alloc * kc_alloc) * sizeof(T)));
    }

    int nthreads = get_num_threads();
    if (work < double(g_parallel_min_work.load(std::memory_order_relaxed))) nthreads = 1;
    // No more threads than tiles in a block.
    const std::int64_t tiles = (mc_alloc / kern.mr) * (nc_alloc / kern.nr);
    if (tiles < nthreads) nthreads = int(tiles);
    parallel_run(nthreads, &run_region<T>, &g);
}

template resolved_blocks kernel_blocks<float>(const gemm_kernel<float>&);
template resolved_blocks kernel_blocks<double>(const gemm_kernel<double>&);
template void gemm_strided<float>(std::int64_t, std::int64_t, std::int64_t, float, const float*, std::int64_t,
                                  std::int64_t, const float*, std::int64_t, std::int64_t, float, float*,
                                  std::int64_t, const gemm_epilogue<float>*);
template void gemm_strided<double>(std::int64_t, std::int64_t, std::int64_t, double, const double*, std::int64_t,
                                   std::int64_t, const double*, std::int64_t, std::int64_t, double, double*,
                                   std::int64_t, const gemm_epilogue<double>*);

}  // namespace pyfastnn
