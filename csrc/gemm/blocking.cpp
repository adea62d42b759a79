// Cache detection and the analytical block-size model (see blocking.h). Baseline code.
#include "gemm/blocking.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#endif

namespace pyfastnn {

bool cache_level::valid() const {
    // Hypervisors sometimes report zeros or nonsense: accept only what describes a real cache.
    if (size < 1024 || size > (std::int64_t(1) << 40) || ways < 1 || ways > 1024 || line < 16 || line > 1024)
        return false;
    return size % (std::int64_t(ways) * line) == 0;
}

namespace {

#if defined(__x86_64__) || defined(_M_X64)
// CPUID's deterministic cache parameters: leaf 4 (Intel) and 0x8000001D (AMD, with TOPOEXT) share one layout.
// EAX[4:0] type (0 = no more caches, 1 data, 2 instruction, 3 unified), EAX[7:5] level, EAX[9] fully
// associative, EAX[25:14] logical CPUs sharing - 1; EBX[11:0] line - 1, EBX[21:12] partitions - 1,
// EBX[31:22] ways - 1; ECX sets - 1.
bool read_cpuid_caches(cache_info& out) {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return false;
    const unsigned max_leaf = eax;
    const bool amd = ebx == 0x68747541 /* "Auth" */ || ebx == 0x6f677948 /* "Hygo" */;
    unsigned leaf = 0;
    if (amd) {
        if (!__get_cpuid(0x80000000, &eax, &ebx, &ecx, &edx) || eax < 0x8000001D) return false;
        __get_cpuid(0x80000001, &eax, &ebx, &ecx, &edx);
        if (((ecx >> 22) & 1) == 0) return false;  // no TOPOEXT: leaf 0x8000001D is not defined
        leaf = 0x8000001D;
    } else {
        if (max_leaf < 4) return false;
        leaf = 4;
    }
    bool any = false;
    for (unsigned sub = 0; sub < 16; ++sub) {
        __cpuid_count(leaf, sub, eax, ebx, ecx, edx);
        const unsigned type = eax & 0x1F;
        if (type == 0) break;
        if (type == 2) continue;  // instruction cache
        cache_level c;
        c.line = int((ebx & 0xFFF) + 1);
        const std::int64_t partitions = ((ebx >> 12) & 0x3FF) + 1;
        const std::int64_t sets = std::int64_t(ecx) + 1;
        const bool fully = (eax >> 9) & 1;
        const int ways = int(((ebx >> 22) & 0x3FF) + 1);
        c.size = std::int64_t(ways) * partitions * c.line * sets;
        c.ways = fully ? int(std::min<std::int64_t>(c.size / c.line, 1024)) : ways * int(partitions);
        c.shared_by = int(((eax >> 14) & 0xFFF) + 1);
        const unsigned level = (eax >> 5) & 7;
        if (level == 1 && type == 1) out.l1d = c;
        else if (level == 2) out.l2 = c;
        else if (level == 3) out.l3 = c;
        else continue;
        any = true;
    }
    return any && out.l1d.valid();
}
#endif

bool read_text(const std::string& path, std::string* text) {
    std::ifstream f(path);
    if (!f) return false;
    std::getline(f, *text);
    return true;
}

// "32K", "512K", "32768K", "1M" (sysfs) -> bytes; 0 if unreadable.
std::int64_t parse_size(const std::string& s) {
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (errno != 0 || end == s.c_str() || v <= 0) return 0;
    switch (*end) {
        case 'K': return v * 1024;
        case 'M': return v * 1024 * 1024;
        case 'G': return v * 1024 * 1024 * 1024;
        case '\0': return v;
        default: return 0;
    }
}

int parse_int(const std::string& s) {
    char* end = nullptr;
    const long v = std::strtol(s.c_str(), &end, 10);
    return end == s.c_str() || v < 0 || v > (1 << 30) ? 0 : int(v);
}

// Number of CPUs in a sysfs list such as "0-3,8-11".
int count_cpu_list(const std::string& s) {
    int n = 0;
    std::stringstream ss(s);
    std::string part;
    while (std::getline(ss, part, ',')) {
        const auto dash = part.find('-');
        if (dash == std::string::npos) {
            if (!part.empty()) ++n;
        } else {
            n += parse_int(part.substr(dash + 1)) - parse_int(part.substr(0, dash)) + 1;
        }
    }
    return n;
}

bool read_sysfs_caches(cache_info& out) {
    bool any = false;
    for (int i = 0; i < 16; ++i) {
        const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
        std::string level, type, size, ways, line, shared;
        if (!read_text(dir + "level", &level) || !read_text(dir + "type", &type)) break;
        if (type == "Instruction") continue;
        read_text(dir + "size", &size);
        read_text(dir + "ways_of_associativity", &ways);
        read_text(dir + "coherency_line_size", &line);
        cache_level c;
        c.size = parse_size(size);
        c.ways = parse_int(ways);
        c.line = parse_int(line);
        if (read_text(dir + "shared_cpu_list", &shared)) c.shared_by = count_cpu_list(shared);
        const int lv = parse_int(level);
        if (lv == 1 && type == "Data") out.l1d = c;
        else if (lv == 2) out.l2 = c;
        else if (lv == 3) out.l3 = c;
        else continue;
        any = true;
    }
    return any && out.l1d.valid();
}

cache_info detect() {
    cache_info c;
#if defined(__x86_64__) || defined(_M_X64)
    if (read_cpuid_caches(c)) {
        c.source = "cpuid";
        return c;
    }
    c = cache_info{};
#endif
    if (read_sysfs_caches(c)) {
        c.source = "sysfs";
        return c;
    }
    return cache_info{};
}

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

}  // namespace

const cache_info& detect_caches() {
    static const cache_info caches = detect();
    return caches;
}

// The model (Low et al. 2016), one cache level per block; S = elem_size, N = sets, C = line, W = ways:
//  kc (L1): the B micro-panel kc x nr stays in L1 while A micro-panels mr x kc stream through it, one way
//     kept for C. With C_A ways for A and nr/mr C_A for B: C_A = floor((W - 1) / (1 + nr/mr)), kc = C_A N C
//     / (mr S).
//  mc (L2): the A block mc x kc stays in L2 while B micro-panels stream: C_Ac = W - 1 - ceil(kc nr S / (N C))
//     ways for it, mc = C_Ac N C / (kc S), a multiple of mr. We give it at most (W - 1) / 2 ways: on Zen 3
//     (512 KiB 8-way L2) the paper's 6 ways (float64 mc = 192) ran 1-2% slower than 3 (mc = 96); the L2 also
//     holds the C tiles and the B micro-panels on their way to L1.
//  nc (L3): the B block kc x nc beside one A block: C_Bc = W - 1 - ceil(mc kc S / (N C)), nc = C_Bc N C /
//     (kc S), a multiple of nr. The whole L3, not a per-core share: the team packs one B block together.
// The kernels' own sizes were measured (Zen 4) and are kept as a floor wherever they still fit the cache in
// question (kc: a B micro-panel of at most twice L1, as the AVX-512 float64 kernel ran best with on Zen 4;
// mc: an A block within L2 less one way; nc: a B block within half of L3), so the model raises blocks on
// larger caches and lowers them only where the measured ones would not fit. The L1 rule alone is too
// cautious for these kernels: on Zen 3 (32 KiB 8-way L1d) it gives the AVX2 float32 kernel kc = 168, which
// ran 4% slower than 256 (384 ran alike), a short kc streaming C through memory more often; on Zen 4 the
// AVX-512 kernels ran best at kc = 256 and 512 against the model's 144 and 104. nc stops at 4096 (or the
// measured nc, if larger): a larger B block gained nothing when measured, and a smaller one (256 or 512 on
// Zen 3) lost 1-10%, A being packed again for every B block.
gemm_blocks model_blocks(const cache_info& caches, int mr, int nr, int elem_size,
                         const gemm_blocks& measured) {
    gemm_blocks b = measured;
    const std::int64_t s = elem_size;
    if (mr < 1 || nr < 1 || s < 1) return b;
    const cache_level &l1 = caches.l1d, &l2 = caches.l2, &l3 = caches.l3;
    if (l1.valid()) {
        const std::int64_t ways_a = (std::int64_t(l1.ways) - 1) * mr / (mr + nr);
        const std::int64_t kc = ways_a * l1.sets() * l1.line / (mr * s) / 8 * 8;
        // The measured kc is kept while its B micro-panel fits L1 at all.
        const bool measured_fits = std::int64_t(measured.kc) * nr * s <= l1.size * 2;
        const std::int64_t chosen = measured_fits ? std::max<std::int64_t>(kc, measured.kc) : kc;
        b.kc = int(std::clamp<std::int64_t>(chosen, 16, 4096));
    }
    if (l2.valid()) {
        const std::int64_t way_bytes = l2.sets() * l2.line;
        const std::int64_t ways_c = std::min<std::int64_t>(
            l2.ways - 1 - ceil_div(std::int64_t(b.kc) * nr * s, way_bytes), (l2.ways - 1) / 2);
        const std::int64_t mc =
            std::max<std::int64_t>(ways_c, 0) * way_bytes / (std::int64_t(b.kc) * s) / mr * mr;
        const bool measured_fits = std::int64_t(measured.mc) * b.kc * s <= l2.size * (l2.ways - 1) / l2.ways;
        b.mc = int(std::clamp<std::int64_t>(measured_fits ? std::max<std::int64_t>(mc, measured.mc) : mc, mr,
                                            8192 / mr * mr));
    }
    if (l3.valid()) {
        const std::int64_t way_bytes = l3.sets() * l3.line;
        const std::int64_t ways_b = l3.ways - 1 - ceil_div(std::int64_t(b.mc) * b.kc * s, way_bytes);
        const std::int64_t cap = std::max(4096, measured.nc);
        const std::int64_t nc = std::min<std::int64_t>(
            std::max<std::int64_t>(ways_b, 0) * way_bytes / (std::int64_t(b.kc) * s) / nr * nr, cap);
        const bool measured_fits = std::int64_t(measured.nc) * b.kc * s <= l3.size / 2;
        const std::int64_t chosen = measured_fits ? std::max<std::int64_t>(nc, measured.nc) : nc;
        b.nc = int(std::clamp<std::int64_t>(chosen, nr, cap));
    }
    return b;
}

bool parse_blocks(const std::string& text, gemm_blocks* out, std::string* error) {
    std::vector<long long> v;
    std::stringstream ss(text);
    std::string part;
    bool ok = !text.empty();
    while (ok && std::getline(ss, part, ',')) {
        const auto first = part.find_first_not_of(" \t"), last = part.find_last_not_of(" \t");
        const std::string p = first == std::string::npos ? "" : part.substr(first, last - first + 1);
        char* end = nullptr;
        errno = 0;
        const long long x = std::strtoll(p.c_str(), &end, 10);
        ok = !p.empty() && *end == '\0' && errno == 0 && x >= 1 && x <= max_block;
        v.push_back(x);
    }
    if (!ok || v.size() != 3 || text.back() == ',') {
        *error = "PYFASTNN_GEMM_BLOCKS must be three integers MC,KC,NC, each between 1 and " +
                 std::to_string(max_block) + ", got '" + text + "'";
        return false;
    }
    out->mc = int(v[0]), out->kc = int(v[1]), out->nc = int(v[2]);
    return true;
}

namespace {
struct env_blocks {
    bool set = false;
    gemm_blocks blocks;
    std::string error;
};
const env_blocks& read_env() {
    static const env_blocks e = [] {
        env_blocks r;
        const char* s = std::getenv("PYFASTNN_GEMM_BLOCKS");
        if (s != nullptr && *s != '\0') r.set = parse_blocks(s, &r.blocks, &r.error);
        return r;
    }();
    return e;
}
}  // namespace

const std::string& blocks_env_error() { return read_env().error; }

resolved_blocks resolve_blocks(int mr, int nr, int elem_size, const gemm_blocks& measured) {
    const env_blocks& e = read_env();
    if (e.set) return {e.blocks, "override"};
    const cache_info& c = detect_caches();
    if (!c.l1d.valid()) return {measured, "kernel"};
    return {model_blocks(c, mr, nr, elem_size, measured), c.source};
}

}  // namespace pyfastnn
