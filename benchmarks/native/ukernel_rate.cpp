// The micro-kernels' own rate, without packing, blocking loops or Python: each supported level's float32 and
// float64 kernel is called as the macro-kernel calls it (column of tiles by column of tiles over packed panels:
// the B micro-panel stays in L1 while mc / MR A micro-panels stream from L2), and the best of many sweeps is
// reported in GFLOP/s. Compare it with the core's FMA peak (cores x FMA pipes x lanes x 2 x clock) to see how much
// of a GEMM's gap to BLAS is the kernel and how much is everything around it.
//
//   g++ -std=c++17 -O2 -pthread -Icsrc benchmarks/native/ukernel_rate.cpp csrc/gemm/gemm.cpp  (continued)
//       csrc/gemm/blocking.cpp csrc/gemm/kernels/*.cpp csrc/dispatch.cpp csrc/threads.cpp -o /tmp/ukr && /tmp/ukr
//
// Options: --reps N (sweeps per kernel, default 300), --kc K (default 256). One thread; a busy machine lowers the
// numbers (the best sweep is the one least disturbed).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "dispatch.h"
#include "gemm/kernel.h"

namespace {

// Buffers aligned as the packed ones are (64 bytes), filled with small exact values so nothing overflows.
template <class T>
struct aligned_buffer {
    explicit aligned_buffer(std::size_t n) {
        data_ = static_cast<T*>(std::aligned_alloc(64, (n * sizeof(T) + 63) / 64 * 64));
        if (data_ == nullptr) std::exit(2);
        for (std::size_t i = 0; i < n; ++i) data_[i] = T(int(i % 7) - 3) / T(8);
    }
    ~aligned_buffer() { std::free(data_); }
    aligned_buffer(const aligned_buffer&) = delete;
    aligned_buffer& operator=(const aligned_buffer&) = delete;
    T* get() const { return data_; }

private:
    T* data_;
};

// Best GFLOP/s of `reps` sweeps of m_tiles x n_panels tiles, each a kc-step kernel call with beta = 1.
template <class T>
double rate(const pyfastnn::gemm_kernel<T>& kern, int kc, int m_tiles, int n_panels, int reps) {
    const int mr = kern.mr, nr = kern.nr;
    aligned_buffer<T> a(std::size_t(m_tiles) * mr * kc), b(std::size_t(n_panels) * nr * kc);
    const std::int64_t ldc = std::int64_t(n_panels) * nr;
    aligned_buffer<T> c(std::size_t(m_tiles) * mr * ldc);
    double best = 1e300;
    for (int rep = 0; rep < reps; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        for (int jr = 0; jr < n_panels; ++jr)
            for (int ir = 0; ir < m_tiles; ++ir)
                kern.ukernel(kc, a.get() + std::size_t(ir) * mr * kc, mr, b.get() + std::size_t(jr) * nr * kc, nr,
                             c.get() + std::size_t(ir) * mr * ldc + std::size_t(jr) * nr, ldc, T(1), T(1));
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return 2.0 * kc * m_tiles * mr * n_panels * nr / best / 1e9;
}

template <class T>
void report(const pyfastnn::gemm_kernel<T>* kern, int kc, int reps) {
    if (kern == nullptr) return;
    // An A block of about 128 rows (in L2) and 8 B micro-panels, as a macro-kernel sweep over one block column.
    const int m_tiles = std::max(1, 128 / kern->mr);
    std::printf("  %-24s %3d x %-3d kc %d: %7.1f GFLOP/s (A block in L2), %7.1f (one tile, all in L1)\n", kern->name,
                kern->mr, kern->nr, kc, rate(*kern, kc, m_tiles, 8, reps), rate(*kern, kc, 1, 1, reps * 100));
}

}  // namespace

int main(int argc, char** argv) {
    int reps = 300, kc = 256;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::atoi(argv[++i]);
        else if (!std::strcmp(argv[i], "--kc") && i + 1 < argc) kc = std::atoi(argv[++i]);
        else {
            std::fprintf(stderr, "usage: %s [--reps N] [--kc K]\n", argv[0]);
            return 2;
        }
    }
    if (reps < 1 || kc < 1) {
        std::fprintf(stderr, "--reps and --kc must be >= 1; got %d and %d\n", reps, kc);
        return 2;
    }
    for (pyfastnn::isa_level level : pyfastnn::supported_isas()) {
        const pyfastnn::kernel_table& t = pyfastnn::kernels_for(level);
        std::printf("%s\n", pyfastnn::isa_name(level));
        report(t.f32, kc, reps);
        report(t.f64, kc, reps);
    }
    return 0;
}
