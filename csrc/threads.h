// A small persistent thread pool for the compute kernels (std::thread, not OpenMP: libgomp's pool hangs in a
// forked child). Fork-safe: a pthread_atfork child handler drops the pool, and the child builds a new one on
// first use. Portable header.
#pragma once

#include <atomic>

namespace pyfastnn {

// Threads that parallel kernels may use (including the calling thread). Default: the CPUs this process may run
// on. set_num_threads throws std::invalid_argument unless 1 <= n <= max_threads.
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
