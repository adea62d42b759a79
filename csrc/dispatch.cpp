// CPU feature detection (CPUID + XGETBV) and selection of the active kernel table.
#include "dispatch.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#endif

namespace pyfastnn {
namespace {

#if defined(__x86_64__) || defined(_M_X64)
// Reads XCR0. Inline asm rather than _xgetbv(), which would need the xsave target in this baseline TU; the
// caller checks the OSXSAVE CPUID bit first, without which the instruction faults.
std::uint64_t read_xcr0() {
    std::uint32_t eax = 0, edx = 0;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (static_cast<std::uint64_t>(edx) << 32) | eax;
}

void detect_x86(cpu_features& f) {
    f.arch = "x86_64";
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return;
    const unsigned max_leaf = eax;
    char vendor[13] = {};
    std::memcpy(vendor + 0, &ebx, 4);
    std::memcpy(vendor + 4, &edx, 4);
    std::memcpy(vendor + 8, &ecx, 4);
    f.vendor = vendor;

    __get_cpuid(1, &eax, &ebx, &ecx, &edx);
    f.sse2 = (edx >> 26) & 1;
    f.fma = (ecx >> 12) & 1;
    const bool osxsave = (ecx >> 27) & 1;
    f.avx = (ecx >> 28) & 1;

    if (osxsave) {
        const std::uint64_t xcr0 = read_xcr0();
        f.os_avx = (xcr0 & 0x6) == 0x6;                 // bit 1 SSE, bit 2 AVX (upper ymm)
        f.os_avx512 = f.os_avx && (xcr0 & 0xE0) == 0xE0;  // bits 5 opmask, 6 ZMM_Hi256, 7 Hi16_ZMM
    }
    if (max_leaf >= 7) {
        __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx);
        f.avx2 = (ebx >> 5) & 1;
        f.avx512f = (ebx >> 16) & 1;
        f.avx512dq = (ebx >> 17) & 1;
        f.avx512bw = (ebx >> 30) & 1;
        f.avx512vl = (ebx >> 31) & 1;
    }
}
#endif

cpu_features detect() {
    cpu_features f;
#if defined(__x86_64__) || defined(_M_X64)
    detect_x86(f);
#elif defined(__aarch64__)
    f.arch = "aarch64";
    f.neon = true;  // Advanced SIMD is mandatory in AArch64
#elif defined(__arm__)
    f.arch = "arm";
#elif defined(__powerpc64__)
    f.arch = "ppc64";
#elif defined(__riscv)
    f.arch = "riscv";
#else
    f.arch = "unknown";
#endif
    return f;
}

// The per-level tables, filled from the kernel factories (nullptr where a kernel is not compiled).
kernel_table make_table(isa_level level) {
    switch (level) {
        case isa_level::avx512: return {level, avx512_f32_kernel(), avx512_f64_kernel()};
        case isa_level::avx2: return {level, avx2_f32_kernel(), avx2_f64_kernel()};
        case isa_level::neon: return {level, neon_f32_kernel(), neon_f64_kernel()};
        case isa_level::reference: break;
    }
    return {isa_level::reference, reference_f32_kernel(), reference_f64_kernel()};
}

const kernel_table& table(isa_level level) {
    static const kernel_table tables[isa_level_count] = {
        make_table(isa_level::reference), make_table(isa_level::avx2), make_table(isa_level::avx512),
        make_table(isa_level::neon)};
    return tables[static_cast<int>(level)];
}

bool cpu_can_run(isa_level level) {
    const cpu_features& f = detect_cpu();
    switch (level) {
        case isa_level::reference: return true;
        case isa_level::avx2: return f.avx2 && f.fma && f.os_avx;
        case isa_level::avx512: return f.avx512f && f.avx2 && f.fma && f.os_avx512;
        case isa_level::neon: return f.neon;  // Advanced SIMD is mandatory on AArch64 (see detect)
    }
    return false;
}

isa_level initial_isa() {
    const isa_level best = best_isa();
    const char* env = std::getenv("PYFASTNN_ISA");
    if (env == nullptr || *env == '\0') return best;
    isa_level wanted;
    if (!parse_isa(env, &wanted)) {
        std::fprintf(stderr, "pyfastnn: warning: PYFASTNN_ISA=%s is not one of reference, avx2, avx512, neon; using %s\n",
                     env, isa_name(best));
        return best;
    }
    if (!isa_supported(wanted)) {
        std::fprintf(stderr, "pyfastnn: warning: PYFASTNN_ISA=%s is not supported on this CPU/build; using %s\n",
                     env, isa_name(best));
        return best;
    }
    return wanted;
}

std::atomic<int>& active_level() {
    static std::atomic<int> level{static_cast<int>(initial_isa())};
    return level;
}

}  // namespace

std::vector<std::string> cpu_features::feature_names() const {
    std::vector<std::string> names;
    const std::pair<bool, const char*> all[] = {
        {sse2, "sse2"},         {avx, "avx"},           {avx2, "avx2"},         {fma, "fma"},
        {avx512f, "avx512f"},   {avx512dq, "avx512dq"}, {avx512bw, "avx512bw"}, {avx512vl, "avx512vl"},
        {neon, "neon"},
    };
    for (const auto& [present, name] : all)
        if (present) names.emplace_back(name);
    return names;
}

const cpu_features& detect_cpu() {
    static const cpu_features features = detect();
    return features;
}

const char* isa_name(isa_level level) {
    switch (level) {
        case isa_level::reference: return "reference";
        case isa_level::avx2: return "avx2";
        case isa_level::avx512: return "avx512";
        case isa_level::neon: return "neon";
    }
    return "?";
}

bool parse_isa(const std::string& name, isa_level* level) {
    for (int i = 0; i < isa_level_count; ++i) {
        if (name == isa_name(static_cast<isa_level>(i))) {
            *level = static_cast<isa_level>(i);
            return true;
        }
    }
    return false;
}

bool isa_compiled(isa_level level) {
    const kernel_table& t = table(level);
    return t.f32 != nullptr && t.f64 != nullptr;
}

bool isa_supported(isa_level level) { return isa_compiled(level) && cpu_can_run(level); }

std::vector<isa_level> supported_isas() {
    std::vector<isa_level> out;
    for (int i = 0; i < isa_level_count; ++i)
        if (isa_supported(static_cast<isa_level>(i))) out.push_back(static_cast<isa_level>(i));
    return out;
}

isa_level best_isa() { return supported_isas().back(); }  // reference is always supported

isa_level current_isa() { return static_cast<isa_level>(active_level().load(std::memory_order_relaxed)); }

void set_isa(isa_level level) {
    if (!isa_supported(level))
        throw std::invalid_argument(std::string("ISA level '") + isa_name(level) +
                                    "' is not supported on this CPU or not compiled into this build");
    active_level().store(static_cast<int>(level), std::memory_order_relaxed);
}

const kernel_table& active_kernels() { return table(current_isa()); }

const kernel_table& kernels_for(isa_level level) {
    if (!isa_supported(level))
        throw std::invalid_argument(std::string("ISA level '") + isa_name(level) + "' is not supported here");
    return table(level);
}

}  // namespace pyfastnn
