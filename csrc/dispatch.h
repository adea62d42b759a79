// Runtime CPU dispatch: detect what the CPU and the OS support once, pick the best compiled kernel level, and
// hand out its function-pointer table. Portable header: no ISA code.
#pragma once

#include <string>
#include <vector>

#include "gemm/kernel.h"

namespace pyfastnn {

// Kernel levels, ordered within an architecture: a higher level may use everything a lower one does (x86-64:
// reference < avx2 < avx512; aarch64: reference < neon). No build compiles both the x86 levels and neon, so "the
// highest supported level" is the best one on either.
enum class isa_level : int { reference = 0, avx2 = 1, avx512 = 2, neon = 3 };
constexpr int isa_level_count = 4;

struct cpu_features {
    std::string arch;    // "x86_64", "aarch64", ...
    std::string vendor;  // CPUID vendor string on x86, "" elsewhere
    bool sse2 = false, avx = false, avx2 = false, fma = false;
    bool avx512f = false, avx512dq = false, avx512bw = false, avx512vl = false;
    bool neon = false;
    bool os_avx = false;     // XCR0 has the SSE and YMM state bits (1, 2): the OS saves ymm registers
    bool os_avx512 = false;  // XCR0 also has the opmask / ZMM_Hi256 / Hi16_ZMM bits (5, 6, 7)
    std::vector<std::string> feature_names() const;  // the detected features, in a fixed order
};

// The table that callers of the kernels go through.
struct kernel_table {
    isa_level level;
    const gemm_kernel<float>* f32;
    const gemm_kernel<double>* f64;
};

const cpu_features& detect_cpu();

const char* isa_name(isa_level level);
// Parses "reference" | "avx2" | "avx512" | "neon"; returns false for anything else.
bool parse_isa(const std::string& name, isa_level* level);

bool isa_compiled(isa_level level);   // the kernels of this level are built into this binary
bool isa_supported(isa_level level);  // compiled, and the CPU + OS can run them
std::vector<isa_level> supported_isas();  // ascending
isa_level best_isa();

// Active level. Chosen once on first use: the best supported level, or PYFASTNN_ISA if it names a supported one
// (an unknown or unsupported PYFASTNN_ISA prints a warning on stderr and falls back to the best).
isa_level current_isa();
// Throws std::invalid_argument if the level is not supported here.
void set_isa(isa_level level);

const kernel_table& active_kernels();
// Table of any supported level (used to report block sizes); throws std::invalid_argument if unsupported.
const kernel_table& kernels_for(isa_level level);

}  // namespace pyfastnn
