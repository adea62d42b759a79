// A small persistent thread pool for the compute kernels (std::thread, not OpenMP: libgomp's pool hangs in a
// forked child). Fork-safe: a pthread_atfork child handler drops the pool, and the child builds a new one on
// first use. Portable header.
#pragma once

#include <atomic>

namespace pyfastnn {

// Threads that parallel kernels may use (including the calling thread). Default: the CPUs this process may run
// on (its affinity mask on Linux), at most max_threads; the Python package replaces it at import by its own
// default, which also honours PYFASTNN_NUM_THREADS and OMP_NUM_THREADS. set_num_threads throws
// std::invalid_argument unless 1 <= n <= max_threads.
constexpr int max_threads = 256;
int get_num_threads();
void set_num_threads(int n);

// Barrier for the threads of one parallel region: spins (the region's threads are all running), yielding now and
// then so an oversubscribed machine still makes progress.
class spin_barrier {
public:
    explicit spin_barrier(int n) : n_(n) {}
    void wait();

private:
    const int n_;
    std::atomic<int> count_{0};
    std::atomic<int> generation_{0};
};

struct team {
    int tid;        // 0 = the calling thread
    int nthreads;   // threads in this region
    spin_barrier* barrier;
};

using team_fn = void (*)(void* ctx, const team& t);

// How the oversubscription guard has acted (see threads.cpp): regions where the caller stalled waiting for the
// other threads, regions run on
// one thread because of it, and the current backoff in milliseconds.
struct thread_stats {
    long long stalled_regions;
    long long serial_regions;
    double backoff_ms;
};
thread_stats get_thread_stats();

// Runs fn(ctx, t) on up to `requested` threads, the caller being tid 0, and returns when all are done.
// Uses fewer threads (possibly 1, i.e. just the caller) when the pool is busy with another caller's region, so
// concurrent callers never wait on each other or deadlock, and 1 while the CPUs look oversubscribed (workers that
// should have been running made the caller wait). fn must not throw.
void parallel_run(int requested, team_fn fn, void* ctx);

}  // namespace pyfastnn

// The thread count as plain C functions exported from the extension, for threadpoolctl's pyfastnn controller
// (pyfastnn/_threadpoolctl.py): threadpoolctl recognises a thread pool among the loaded shared libraries by
// the symbols it exports and calls them through ctypes. pyfastnn_set_num_threads returns 0, or -1 (changing
// nothing) unless 1 <= n <= max_threads.
#if defined(_WIN32)
#define PYFASTNN_C_EXPORT extern "C" __declspec(dllexport)
#else
#define PYFASTNN_C_EXPORT extern "C" __attribute__((visibility("default")))
#endif
PYFASTNN_C_EXPORT int pyfastnn_get_num_threads() noexcept;
PYFASTNN_C_EXPORT int pyfastnn_set_num_threads(int n) noexcept;
