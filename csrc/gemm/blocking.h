// Cache block sizes of the packed GEMM, chosen for the CPU it runs on. Portable header: no ISA code.
//
// The caches are read once (CPUID leaf 4 on Intel, 0x8000001D on AMD, else Linux sysfs), the block sizes of
// each kernel follow from them by the analytical model of Low et al. ("Analytical modeling is enough for
// high-performance BLIS", ACM TOMS 2016) and are cached per kernel. PYFASTNN_GEMM_BLOCKS=MC,KC,NC overrides
// them for experiments; when nothing answers, the kernel's own (measured) sizes stay.
#pragma once

#include <cstdint>
#include <string>

namespace pyfastnn {

// One cache level as the CPU describes it; size 0 means "not reported".
struct cache_level {
    std::int64_t size = 0;  // bytes, per instance
    int ways = 0;           // associativity (a fully associative cache reports size / line)
    int line = 0;           // bytes
    int shared_by = 0;      // logical CPUs sharing one instance (0: unknown)
    bool valid() const;     // size, ways and line all plausible, and the sets a whole number
    std::int64_t sets() const { return valid() ? size / (std::int64_t(ways) * line) : 0; }
};

struct cache_info {
    cache_level l1d, l2, l3;
    const char* source = "none";  // "cpuid", "sysfs" or "none"
};

struct gemm_blocks {
    int mc = 0, kc = 0, nc = 0;
};

// What the CPU reports, read once.
const cache_info& detect_caches();

// The model, a pure function of the caches and the kernel's shape (register tile mr x nr of elem_size-byte
// values) and its measured sizes `measured` (the floor of each block, see blocking.cpp). A level that is not
// valid() leaves the measured size for the block it would set.
gemm_blocks model_blocks(const cache_info& caches, int mr, int nr, int elem_size,
                         const gemm_blocks& measured);

// Parses "MC,KC,NC" (three integers in [1, max_block]); on failure returns false and says why in *error.
constexpr int max_block = 1 << 20;
bool parse_blocks(const std::string& text, gemm_blocks* out, std::string* error);

// The blocks a kernel runs with, computed on first use: PYFASTNN_GEMM_BLOCKS when it is set and valid, else
// the model from the detected caches, else the kernel's own. `source` says which: "override", "cpuid",
// "sysfs" or "kernel". Never throws: a malformed PYFASTNN_GEMM_BLOCKS is ignored here and reported by
// blocks_env_error().
struct resolved_blocks {
    gemm_blocks blocks;
    const char* source;
};
resolved_blocks resolve_blocks(int mr, int nr, int elem_size, const gemm_blocks& measured);
// Why PYFASTNN_GEMM_BLOCKS was rejected ("" when it is unset or valid); read once, like the blocks.
const std::string& blocks_env_error();

}  // namespace pyfastnn
