// Standalone correctness check of the C++ GEMM (driver + every micro-kernel this build and CPU can run), without
// Python or pybind11: it links only the GEMM sources, the dispatcher and the thread pool, so it also runs where the
// extension cannot be imported -- in particular an aarch64 build under qemu-user (.ci/neon.sh).
//
//   g++ -std=c++17 -O2 -pthread -Icsrc tests/native/gemm_check.cpp csrc/gemm/gemm.cpp csrc/gemm/blocking.cpp  (continued)
//       csrc/gemm/kernels/*.cpp csrc/dispatch.cpp csrc/threads.cpp -o /tmp/gemm_check && /tmp/gemm_check
//
// Options: --quick (sizes up to 64 only), --full (all sizes, the default), --sizes 1,7,33 (own size list),
// --isa NAME (one level instead of all supported ones), --expect-default NAME (fail unless the dispatcher's own
// choice, which PYFASTNN_ISA can lower, is NAME).
//
// What it checks, for every supported ISA level (set_isa), float32 and float64:
//  1. The micro-kernel contract directly (ukernel of the level's table): full MR x NR tile from random packed
//     panels, k in {0, 1, 2, 5, 64}, C with row stride > NR, beta = 0 on a C full of NaN, beta != 0 reading C,
//     and nothing outside the tile written.
//  2. gemm<T> against a naive triple loop in double: m, n, k each in {1, 2, 3, 7, 8, 9, 13, 31, 33, 64, 127, 257}
//     (all combinations), the four trans_a / trans_b cases, alpha in {1, -0.5}, beta in {0, 1, 0.3}; leading
//     dimensions larger than the minimum; C pre-filled with NaN when beta = 0 (a read of C would leave NaN in the
//     result), and guard values around C that must survive bit for bit. Each problem runs in three driver modes:
//       auto    the default tunables, one thread (small problems take the unpacked direct path),
//       packed  direct path off (every problem whose n is not under NR/2 goes through packing + micro-kernel),
//       blocked packed, with tiny blocks (mc 16, kc 7, nc 24, rounded to the tile) so every loop of the driver
//               runs several times (beta applied on the first k block only), and 2 threads.
//     Tolerance per element: ((k + 4) eps_T + (k + 2) eps_double) * (|alpha| sum_p |A_ip| |B_pj| + |beta| |C_ij|),
//     i.e. the standard k * eps dot-product bound for the tested type plus the double reference's own.
// Exit status 0 if everything passed, 1 otherwise (the first failures are printed).
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "dispatch.h"
#include "gemm/gemm.h"
#include "gemm/kernel.h"
#include "threads.h"

namespace {

using pyfastnn::gemm_kernel;
using pyfastnn::gemm_params;
using pyfastnn::isa_level;

std::mt19937_64 rng(20240611);
double uniform() { return double(rng() >> 11) * 0x1.0p-52 - 1.0; }  // [-1, 1)

int failures = 0;
void fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void fail(const char* fmt, ...) {
    if (++failures <= 20) {
        va_list ap;
        va_start(ap, fmt);
        std::printf("FAIL ");
        std::vprintf(fmt, ap);
        std::printf("\n");
        va_end(ap);
    }
}

template <class T>
const gemm_kernel<T>& kernel_of(const pyfastnn::kernel_table& t);
template <>
const gemm_kernel<float>& kernel_of<float>(const pyfastnn::kernel_table& t) { return *t.f32; }
template <>
const gemm_kernel<double>& kernel_of<double>(const pyfastnn::kernel_table& t) { return *t.f64; }

template <class T>
const char* type_name() { return sizeof(T) == 4 ? "float32" : "float64"; }

constexpr double eps_d = std::numeric_limits<double>::epsilon();

template <class T>
double tolerance(std::int64_t k, double scale) {
    return (double(k + 4) * double(std::numeric_limits<T>::epsilon()) + double(k + 2) * eps_d) * scale;
}

bool same_bits(double x, double y) { return std::memcmp(&x, &y, sizeof x) == 0; }
template <class T>
bool same_bits(T x, T y) { return std::memcmp(&x, &y, sizeof x) == 0; }

// Worst error seen, as a fraction of the tolerance.
struct stats {
    long calls = 0;
    double worst_ratio = 0, worst_abs = 0;
    std::string worst_case;
    void add(double ratio, double abs_err, const std::string& where) {
        if (ratio > worst_ratio) worst_ratio = ratio, worst_abs = abs_err, worst_case = where;
    }
};

// ---- 1. the micro-kernel contract, called directly ----

template <class T>
void check_ukernel(const gemm_kernel<T>& kern, stats& st) {
    const int mr = kern.mr, nr = kern.nr;
    const T nan = std::numeric_limits<T>::quiet_NaN(), guard = T(12345.5);
    // Packed panels as the driver lays them out (k steps of MR and NR values), and panels read in place from a
    // wider matrix (steps larger than MR and NR, as the driver passes for shallow operands).
    for (int in_place = 0; in_place < 2; ++in_place)
    for (std::int64_t k : {0, 1, 2, 5, 64}) {
        const std::int64_t a_step = mr + 3 * in_place, b_step = nr + 5 * in_place;
        std::vector<T> a(std::size_t(k * a_step) + 1);
        T* b = static_cast<T*>(std::aligned_alloc(64, ((std::size_t(k * b_step) + 1) * sizeof(T) + 63) / 64 * 64));
        for (std::int64_t i = 0; i < k * a_step; ++i) a[std::size_t(i)] = T(uniform());
        for (std::int64_t i = 0; i < k * b_step; ++i) b[i] = T(uniform());
        const std::int64_t rs_c = nr + 3;
        for (T alpha : {T(1), T(-0.5)})
            for (T beta : {T(0), T(1), T(0.3)}) {
                std::vector<T> c0(std::size_t(mr * rs_c)), c(std::size_t((mr + 1) * rs_c), guard);
                for (int r = 0; r < mr; ++r)
                    for (int j = 0; j < nr; ++j) {
                        c0[std::size_t(r * rs_c + j)] = T(uniform());
                        c[std::size_t(r * rs_c + j)] = beta == T(0) ? nan : c0[std::size_t(r * rs_c + j)];
                    }
                kern.ukernel(k, a.data(), a_step, b, b_step, c.data(), rs_c, alpha, beta);
                ++st.calls;
                for (int r = 0; r <= mr; ++r)
                    for (std::int64_t j = 0; j < rs_c; ++j) {
                        const T got = c[std::size_t(r * rs_c + j)];
                        if (r == mr || j >= nr) {
                            if (!same_bits(got, guard))
                                fail("%s ukernel k=%lld: wrote outside the tile at (%d, %lld)", kern.name,
                                     (long long)k, r, (long long)j);
                            continue;
                        }
                        double ref = 0, scale = 0;
                        for (std::int64_t p = 0; p < k; ++p) {
                            ref += double(a[std::size_t(p * a_step + r)]) * double(b[p * b_step + j]);
                            scale += std::fabs(double(a[std::size_t(p * a_step + r)]) * double(b[p * b_step + j]));
                        }
                        const double cij = double(c0[std::size_t(r * rs_c + j)]);
                        ref = double(alpha) * ref + (beta == T(0) ? 0.0 : double(beta) * cij);
                        scale = std::fabs(double(alpha)) * scale + std::fabs(double(beta)) * std::fabs(cij);
                        const double err = std::fabs(double(got) - ref), tol = tolerance<T>(k, scale);
                        if (!(err <= tol))  // also catches NaN
                            fail("%s ukernel k=%lld alpha=%g beta=%g (%d, %lld): got %.17g want %.17g (tol %.3g)",
                                 kern.name, (long long)k, double(alpha), double(beta), r, (long long)j, double(got),
                                 ref, tol);
                        else if (tol > 0)
                            st.add(err / tol, err, "ukernel k=" + std::to_string(k));
                    }
            }
        std::free(b);
    }
}

// ---- 2. gemm<T> through the driver ----

struct mode {
    const char* name;
    gemm_params params;
    int threads;
};

std::vector<mode> make_modes() {
    const gemm_params defaults = pyfastnn::get_gemm_params();
    gemm_params packed = defaults;
    packed.direct_max_work = 0;
    packed.direct_max_m = 0;
    gemm_params blocked = packed;
    blocked.parallel_min_work = 0;
    blocked.mc = 16, blocked.kc = 7, blocked.nc = 24;
    return {{"auto", defaults, 1}, {"packed", packed, 1}, {"blocked", blocked, 2}};
}

// One problem: random op(A), op(B), C0 and the exact-ish double product, shared by every level, mode, alpha, beta.
template <class T>
struct problem {
    std::int64_t m, n, k, lda, ldb, ldc;
    bool ta, tb;
    std::vector<T> a, b, c0;
    std::vector<double> prod, abs_prod;  // op(A) op(B) and |op(A)| |op(B)|, m x n

    problem(std::int64_t m_, std::int64_t n_, std::int64_t k_, bool ta_, bool tb_)
        : m(m_), n(n_), k(k_), ta(ta_), tb(tb_) {
        // Stored A is k x m when transposed, B is n x k; every leading dimension has slack.
        lda = (ta ? m : k) + 3;
        ldb = (tb ? k : n) + 2;
        ldc = n + 5;
        a.resize(std::size_t((ta ? k : m) * lda));
        b.resize(std::size_t((tb ? n : k) * ldb));
        c0.resize(std::size_t(m * ldc));
        for (T& x : a) x = T(uniform());
        for (T& x : b) x = T(uniform());
        for (T& x : c0) x = T(uniform());
        prod.assign(std::size_t(m * n), 0.0);
        abs_prod.assign(std::size_t(m * n), 0.0);
        for (std::int64_t i = 0; i < m; ++i)
            for (std::int64_t p = 0; p < k; ++p) {
                const double aip = double(ta ? a[std::size_t(p * lda + i)] : a[std::size_t(i * lda + p)]);
                for (std::int64_t j = 0; j < n; ++j) {
                    const double bpj = double(tb ? b[std::size_t(j * ldb + p)] : b[std::size_t(p * ldb + j)]);
                    prod[std::size_t(i * n + j)] += aip * bpj;
                    abs_prod[std::size_t(i * n + j)] += std::fabs(aip * bpj);
                }
            }
    }

    std::string describe(const char* isa, const char* mode_name, T alpha, T beta) const {
        char s[200];
        std::snprintf(s, sizeof s, "%s %s %s m=%lld n=%lld k=%lld ta=%d tb=%d alpha=%g beta=%g", isa, type_name<T>(),
                      mode_name, (long long)m, (long long)n, (long long)k, int(ta), int(tb), double(alpha),
                      double(beta));
        return s;
    }

    void run(const char* isa, const char* mode_name, stats& st) const {
        const T nan = std::numeric_limits<T>::quiet_NaN(), guard = T(-7777.25);
        for (T alpha : {T(1), T(-0.5)})
            for (T beta : {T(0), T(1), T(0.3)}) {
                // C: m rows of ldc plus one guard row; columns n..ldc-1 and the last row are guards.
                std::vector<T> c(std::size_t((m + 1) * ldc), guard);
                for (std::int64_t i = 0; i < m; ++i)
                    for (std::int64_t j = 0; j < n; ++j)
                        c[std::size_t(i * ldc + j)] = beta == T(0) ? nan : c0[std::size_t(i * ldc + j)];
                pyfastnn::gemm<T>(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
                ++st.calls;
                double worst = 0, worst_abs = 0;
                for (std::int64_t i = 0; i <= m; ++i)
                    for (std::int64_t j = 0; j < ldc; ++j) {
                        const T got = c[std::size_t(i * ldc + j)];
                        if (i == m || j >= n) {
                            if (!same_bits(got, guard))
                                fail("%s: wrote outside C at (%lld, %lld)", describe(isa, mode_name, alpha, beta).c_str(),
                                     (long long)i, (long long)j);
                            continue;
                        }
                        const double cij = double(c0[std::size_t(i * ldc + j)]);
                        const double ref = double(alpha) * prod[std::size_t(i * n + j)] +
                                           (beta == T(0) ? 0.0 : double(beta) * cij);
                        const double scale = std::fabs(double(alpha)) * abs_prod[std::size_t(i * n + j)] +
                                             std::fabs(double(beta)) * std::fabs(cij);
                        const double err = std::fabs(double(got) - ref), tol = tolerance<T>(k, scale);
                        if (!(err <= tol))
                            fail("%s (%lld, %lld): got %.17g want %.17g (err %.3g, tol %.3g)",
                                 describe(isa, mode_name, alpha, beta).c_str(), (long long)i, (long long)j,
                                 double(got), ref, err, tol);
                        else if (tol > 0 && err / tol > worst)
                            worst = err / tol, worst_abs = err;
                    }
                if (worst > st.worst_ratio) st.add(worst, worst_abs, describe(isa, mode_name, alpha, beta));
            }
    }
};

template <class T>
void check_gemm(const std::vector<isa_level>& levels, const std::vector<std::int64_t>& sizes,
                const std::vector<mode>& modes, std::vector<std::vector<stats>>& st) {
    for (std::int64_t m : sizes)
        for (std::int64_t n : sizes)
            for (std::int64_t k : sizes)
                for (int t = 0; t < 4; ++t) {
                    const problem<T> prob(m, n, k, t & 1, t & 2);
                    for (std::size_t l = 0; l < levels.size(); ++l) {
                        pyfastnn::set_isa(levels[l]);
                        for (std::size_t md = 0; md < modes.size(); ++md) {
                            pyfastnn::set_gemm_params(modes[md].params);
                            pyfastnn::set_num_threads(modes[md].threads);
                            prob.run(pyfastnn::isa_name(levels[l]), modes[md].name, st[l][md]);
                        }
                    }
                }
}

}  // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // lines as they come, also into a log file
    std::vector<std::int64_t> sizes = {1, 2, 3, 7, 8, 9, 13, 31, 33, 64, 127, 257};
    std::string only, expect_default;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--quick") sizes = {1, 2, 3, 7, 8, 9, 13, 31, 33, 64};
        else if (arg == "--full") sizes = {1, 2, 3, 7, 8, 9, 13, 31, 33, 64, 127, 257};
        else if (arg == "--sizes" && i + 1 < argc) {
            sizes.clear();
            for (const char* p = argv[++i]; *p != '\0';) {
                char* end = nullptr;
                const long long v = std::strtoll(p, &end, 10);
                if (end == p || v < 1) return std::fprintf(stderr, "--sizes: positive integers, comma-separated\n"), 2;
                sizes.push_back(v);
                p = *end == ',' ? end + 1 : end;
            }
        } else if (arg == "--isa" && i + 1 < argc) only = argv[++i];
        else if (arg == "--expect-default" && i + 1 < argc) expect_default = argv[++i];
        else {
            std::fprintf(stderr,
                         "usage: %s [--quick | --full | --sizes N,N,...] [--isa LEVEL] [--expect-default LEVEL]\n",
                         argv[0]);
            return 2;
        }
    }

    const pyfastnn::cpu_features& cpu = pyfastnn::detect_cpu();
    std::string features;
    for (const std::string& f : cpu.feature_names()) features += " " + f;
    std::vector<isa_level> levels;
    for (isa_level l : pyfastnn::supported_isas())
        if (only.empty() || only == pyfastnn::isa_name(l)) levels.push_back(l);
    std::printf("gemm_check: arch %s, features:%s; default level %s\n", cpu.arch.c_str(), features.c_str(),
                pyfastnn::isa_name(pyfastnn::current_isa()));
    if (!expect_default.empty() && expect_default != pyfastnn::isa_name(pyfastnn::current_isa()))
        fail("default level is %s, expected %s", pyfastnn::isa_name(pyfastnn::current_isa()), expect_default.c_str());
    if (levels.empty()) {
        std::printf("FAIL no supported ISA level matches '%s'\n", only.c_str());
        return 1;
    }

    // 1. micro-kernels
    for (isa_level l : levels) {
        const pyfastnn::kernel_table& t = pyfastnn::kernels_for(l);
        stats s32, s64;
        check_ukernel(kernel_of<float>(t), s32);
        check_ukernel(kernel_of<double>(t), s64);
        std::printf("ukernel %-10s %-20s %4ld calls, max err/tol %.4f | %-20s %4ld calls, max err/tol %.4f\n",
                    pyfastnn::isa_name(l), t.f32->name, s32.calls, s32.worst_ratio, t.f64->name, s64.calls,
                    s64.worst_ratio);
    }

    // 2. gemm through the driver
    std::string size_list;
    for (std::int64_t s : sizes) size_list += (size_list.empty() ? "" : ",") + std::to_string(s);
    std::printf("gemm: m, n, k each in {%s} (%zu problems), 4 transpose cases, alpha {1, -0.5}, beta {0, 1, 0.3}\n",
                size_list.c_str(), sizes.size() * sizes.size() * sizes.size());
    const std::vector<mode> modes = make_modes();
    const gemm_params saved = pyfastnn::get_gemm_params();
    const isa_level saved_level = pyfastnn::current_isa();
    std::vector<std::vector<stats>> st32(levels.size(), std::vector<stats>(modes.size())), st64 = st32;
    check_gemm<float>(levels, sizes, modes, st32);
    check_gemm<double>(levels, sizes, modes, st64);
    pyfastnn::set_gemm_params(saved);
    pyfastnn::set_isa(saved_level);

    for (std::size_t l = 0; l < levels.size(); ++l)
        for (std::size_t md = 0; md < modes.size(); ++md)
            for (int d = 0; d < 2; ++d) {
                const stats& s = (d == 0 ? st32 : st64)[l][md];
                std::printf("gemm %-10s %-8s %-8s %6ld calls, max err/tol %.4f (abs %.3g; %s)\n",
                            pyfastnn::isa_name(levels[l]), d == 0 ? "float32" : "float64", modes[md].name, s.calls,
                            s.worst_ratio, s.worst_abs, s.worst_case.c_str());
            }
    if (failures > 0) {
        std::printf("gemm_check: FAILED (%d failures)\n", failures);
        return 1;
    }
    std::printf("gemm_check: OK\n");
    return 0;
}
